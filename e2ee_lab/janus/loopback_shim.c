/*
 * e2ee_lab's loopback shim for Janus (LD_PRELOAD, loaded by the Janus process only).
 *
 * Janus (src/ice.c, janus_ice_setup_local) and libnice (nice_interfaces_get_local_ips) skip every
 * interface whose flags include IFF_LOOPBACK when they gather ICE host candidates; no setting
 * changes that. Inside a private network namespace the only interface is lo, so Janus would offer
 * no candidate at all. This wrapper calls the C library's getifaddrs() and clears IFF_LOOPBACK in
 * the list it returns, so 127.0.0.1 is gathered like any other address. Nothing else is changed:
 * the addresses, the other flags and every other function are the C library's own.
 *
 * Built at first use with the system C compiler (cc -shared -fPIC -o shim.so this.c -ldl) into
 * the user's cache directory by e2ee_lab/janus/shim.py; never committed as a binary.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>

typedef int (*getifaddrs_fn)(struct ifaddrs **);

int getifaddrs(struct ifaddrs **ifap)
{
    static getifaddrs_fn real;
    if (real == NULL)
        real = (getifaddrs_fn)dlsym(RTLD_NEXT, "getifaddrs");
    if (real == NULL)
        return -1;
    int rc = real(ifap);
    if (rc == 0)
        for (struct ifaddrs *i = *ifap; i != NULL; i = i->ifa_next)
            i->ifa_flags &= ~IFF_LOOPBACK;
    return rc;
}
