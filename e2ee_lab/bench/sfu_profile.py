"""Where the SFU's CPU time goes: ``cProfile`` on the SFU's process of ``bench sfu``, one room, one mode.

:func:`profile_sfu` runs the same two-process load as :func:`~e2ee_lab.bench.sfu.bench_sfu`
(pre-protected SRTP, RFC 3711 with RFC 7714 AES-GCM keys from a DTLS-SRTP handshake per leg, RFC
5764; VP8 + Opus per participant, forwarded as in RFC 7667 §3.7) for one room size and one mode,
with a ``cProfile`` profiler running in the SFU's process over exactly the timed spans. Each
function's self time is put in a category by :data:`RULES` (first match wins); a function no rule
names (a builtin, a helper such as ``pylibsrtp``'s ``__process``) is split among its callers in
proportion to the self time it spent under each, and takes their categories. The categories:
``protect + send`` (the per-subscriber loop, SRTP protect, the socket tap wrapper, ``sendto``),
``receive`` (``recvfrom``, demultiplexing, SRTP unprotect), ``routing`` (the SFU core: header checks,
SSRC and sequence rewrite, the view tap), ``dispatch`` (leg events, timers, the DTLS pump),
``event loop`` (asyncio's own loop), ``harness`` (the benchmark's run loop) and ``waiting`` (time
blocked in ``epoll``/``kqueue``, left out of the busy time the shares are taken of). cProfile adds a fixed cost
to every Python call, so the shares lean towards code with many small calls; the figures are a map
of where the time goes, not a speed (``bench sfu`` without a profiler measures that).
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from e2ee_lab.bench.sfu import DEFAULT_VIDEO, FORWARD_TARGET, collect_runs, load_plan

SEND, RECEIVE, ROUTING, DISPATCH = "protect + send", "receive", "routing", "dispatch"
LOOP, HARNESS, WAITING, OTHER = "event loop", "harness", "waiting", "other"
CATEGORIES = (SEND, RECEIVE, ROUTING, DISPATCH, LOOP, HARNESS, OTHER, WAITING)
BUILTIN = "~"  # cProfile's file name for functions written in C

# (category, file as shown by short_path() or a folder ending in "/", function names or None for all);
# a C function (file BUILTIN) matches when its name contains one of the names.
RULES: tuple[tuple[str, str, frozenset[str] | None], ...] = (
    (SEND, "e2ee_lab/sfu/server.py", frozenset({"_send"})),
    (SEND, "e2ee_lab/transport/udp.py", frozenset({"send_rtp", "tapped_sendto", "check_loopback"})),
    (SEND, "e2ee_lab/transport/leg.py", frozenset({"protect_rtp", "_sessions"})),
    (SEND, "e2ee_lab/transport/srtp.py", frozenset({"protect", "protect_rtcp"})),
    (SEND, "pylibsrtp/__init__.py", frozenset({"protect", "protect_rtcp"})),
    (SEND, BUILTIN, frozenset({"'sendto' of '_socket.socket'", "srtp_protect>", "srtp_protect_rtcp>"})),
    (RECEIVE, "asyncio/selector_events.py", frozenset({"_read_ready"})),
    (RECEIVE, BUILTIN, frozenset({"'recvfrom' of '_socket.socket'", "srtp_unprotect>", "srtp_unprotect_rtcp>"})),
    (RECEIVE, "e2ee_lab/transport/udp.py", frozenset({"datagram_received"})),
    (RECEIVE, "e2ee_lab/transport/leg.py", frozenset({"receive_datagram", "_receive_srtp"})),
    (RECEIVE, "e2ee_lab/transport/demux.py", None),
    (RECEIVE, "e2ee_lab/transport/srtp.py", frozenset({"unprotect", "unprotect_rtcp"})),
    (RECEIVE, "pylibsrtp/__init__.py", frozenset({"unprotect", "unprotect_rtcp"})),
    (RECEIVE, "e2ee_lab/bench/sfu_load.py", frozenset({"datagram_received"})),  # the bare forwarder
    (DISPATCH, "e2ee_lab/sfu/server.py", None),
    (DISPATCH, "e2ee_lab/transport/udp.py", frozenset({"process", "transmit", "_now", "_arm_timer", "_on_timer",
                                                       "_cancel_timer", "_handle_event"})),
    (DISPATCH, "e2ee_lab/transport/leg.py", frozenset({"next_event", "datagrams_to_send", "get_timer",
                                                       "handle_timer", "_pump_dtls", "_queue"})),
    (DISPATCH, "e2ee_lab/transport/dtls.py", None),
    (ROUTING, "e2ee_lab/sfu/", None),
    (LOOP, "asyncio/base_events.py", frozenset({"_run_once", "run_forever", "run_until_complete"})),
    (LOOP, "asyncio/events.py", frozenset({"_run"})),
    (LOOP, "asyncio/selector_events.py", frozenset({"_process_events"})),
    (LOOP, "selectors.py", None),
    (WAITING, BUILTIN, frozenset({"'poll' of 'select.epoll'", "'control' of 'select.kqueue'"})),
    (HARNESS, "e2ee_lab/bench/", None),
)

FuncKey = tuple[str, int, str]  # cProfile's (file, line, function name)
Stats = Mapping[FuncKey, tuple]  # FuncKey -> (primitive calls, calls, self s, cumulative s, callers)


@dataclass(frozen=True)
class SFUProfile:
    """A profile of the SFU's process over the timed runs of one room and mode."""

    participants: int  # people in the room
    mode: str  # "dtls-srtp", "e2ee" or "bare"
    loop: str  # the SFU process's event loop
    received: int  # packets the forwarder took in during the profiled runs, all together
    forwarded: int  # packets forwarded in the profiled runs, all together
    cpu_s: float  # the SFU process's CPU seconds in those runs (with the profiler's cost)
    categories: pd.DataFrame  # category, self_s, share_pct (of busy time), us_per_packet
    functions: pd.DataFrame  # function, category, calls, self_s, cum_s, share_pct, us_per_packet


def short_path(path: str) -> str:
    """A profiled file's path without the machine's prefixes: ``e2ee_lab/...``, ``asyncio/...``,
    ``pylibsrtp/...``; :data:`BUILTIN` stays as it is."""
    path = path.replace("\\", "/")
    if "/site-packages/" in path:
        return path.rsplit("/site-packages/", 1)[1]
    if "/e2ee_lab/" in path:
        return "e2ee_lab/" + path.rsplit("/e2ee_lab/", 1)[1]
    stdlib = sysconfig.get_paths()["stdlib"].replace("\\", "/").rstrip("/") + "/"
    return path[len(stdlib):] if path.startswith(stdlib) else path


def rule_category(key: FuncKey) -> str | None:
    """The category :data:`RULES` give the function ``key``, or None when no rule names it."""
    path, _, name = key
    where = short_path(path)
    for category, place, names in RULES:
        if where != place and not (place.endswith("/") and where.startswith(place)):
            continue
        if names is None or name in names or (place == BUILTIN and any(n in name for n in names)):
            return category
    return None


def categorize(stats: Stats) -> dict[FuncKey, dict[str, float]]:
    """Each function's category shares (summing to 1): its rule's, else its callers' by self time.

    A function without a rule and without callers (or reached only through a cycle) is ``other``.
    """
    shares: dict[FuncKey, dict[str, float]] = {}

    def resolve(key: FuncKey, visiting: frozenset[FuncKey]) -> tuple[dict[str, float], bool]:
        """(shares, whether a cycle was cut on the way: then the answer is not cached).

        Empty shares: every caller lies on the cycle being resolved (the others decide).
        """
        if key in shares:
            return shares[key], False
        category = rule_category(key)
        callers = stats[key][4] if key in stats and category is None else {}
        weights = {c: edge[2] or edge[1] for c, edge in callers.items() if c not in visiting}
        cut = len(weights) < len(callers)
        result: dict[str, float] = {}
        for caller, weight in weights.items():
            parts, cut_above = resolve(caller, visiting | {key})
            cut = cut or cut_above
            for name, part in parts.items():
                result[name] = result.get(name, 0.0) + part * weight
        total = sum(result.values())
        if total > 0:
            result = {name: part / total for name, part in result.items()}
        elif not cut:
            result = {category or OTHER: 1.0}
        if not cut:
            shares[key] = result
        return result, cut

    return {key: resolve(key, frozenset())[0] or {OTHER: 1.0} for key in stats}


def _label(key: FuncKey) -> str:
    path, line, name = key
    return name if path == BUILTIN else f"{short_path(path)}:{line}({name})"


def summarize_profile(stats: Stats, forwarded: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(categories, functions) tables of a pstats dict; shares are of the busy (not waiting) time."""
    shares = categorize(stats)
    per_category = {c: 0.0 for c in CATEGORIES}
    rows = []
    for key, (_, calls, self_s, cum_s, _) in stats.items():
        for category, part in shares[key].items():
            per_category[category] += self_s * part
        rows.append({"function": _label(key), "category": max(shares[key], key=shares[key].get),
                     "calls": calls, "self_s": self_s, "cum_s": cum_s})
    busy = sum(v for c, v in per_category.items() if c != WAITING) or float("nan")
    per_packet = 1e6 / max(1, forwarded)
    categories = pd.DataFrame({"category": list(per_category), "self_s": list(per_category.values())})
    functions = pd.DataFrame(rows).sort_values("self_s", ascending=False, ignore_index=True)
    for table in (categories, functions):
        table["share_pct"] = [float("nan") if c == WAITING else 100 * s / busy
                              for c, s in zip(table["category"], table["self_s"])]
        table["us_per_packet"] = table["self_s"] * per_packet
    return categories, functions


def profile_sfu(participants: int = 4, mode: str = "e2ee", repeat: int = 3, number: int | None = None, *,
                target: int = FORWARD_TARGET, video: str = DEFAULT_VIDEO, loop: str = "asyncio", seed: int = 0,
                progress: bool = True) -> SFUProfile:
    """Profile the SFU's process over ``repeat`` timed runs of one room size and mode.

    Args:
        participants: people in the room (at least 2).  mode: "dtls-srtp", "e2ee" or "bare".
        repeat, number, target, video, loop, seed, progress: as for
            :func:`~e2ee_lab.bench.sfu.bench_sfu` (warm-up runs are not profiled).
    Returns:
        An :class:`SFUProfile`: the share of busy time and µs per forwarded packet per category
        and per function (profiler cost included).
    Raises:
        ValueError: bad counts, room, mode, loop or medium.  ImportError: uvloop asked for but
        absent.  RuntimeError / TimeoutError: the load processes failed or timed out.
    """
    plan = load_plan([participants], [mode], repeat, number, target=target, video=video, loop=loop, seed=seed,
                     profile=True)
    rows, stats = collect_runs(plan, progress)
    if not stats:
        raise RuntimeError("the SFU process sent no profile")
    forwarded = int(sum(r["forwarded"] for r in rows))
    categories, functions = summarize_profile(stats, forwarded)
    return SFUProfile(participants=participants, mode=mode, loop=loop,
                      received=int(sum(r["received"] for r in rows)), forwarded=forwarded,
                      cpu_s=float(sum(r["cpu_s"] for r in rows)), categories=categories, functions=functions)


def format_profile(profile: SFUProfile, top: int = 15) -> str:
    """The shares per category, then the ``top`` functions by self time, as text."""
    cats = profile.categories[profile.categories["self_s"] > 0]
    head = (f"cProfile of the SFU process: room of {profile.participants}, {profile.mode}, {profile.loop}; "
            f"{profile.forwarded:,} packets forwarded in {profile.cpu_s:.2f} CPU s under the profiler "
            f"({profile.cpu_s / max(1, profile.forwarded) * 1e6:.1f} µs per packet); Python {sys.version.split()[0]}")
    share = pd.DataFrame({"category": cats["category"], "self s": cats["self_s"].map("{:.3f}".format),
                          "% of busy": cats["share_pct"].map(lambda v: "(idle)" if v != v else f"{v:.1f}"),
                          "µs/pkt": cats["us_per_packet"].map("{:.2f}".format)})
    funcs = profile.functions.head(top)
    table = pd.DataFrame({"function": funcs["function"].str.slice(0, 70), "category": funcs["category"],
                          "calls": funcs["calls"], "self s": funcs["self_s"].map("{:.3f}".format),
                          "% of busy": funcs["share_pct"].map(lambda v: "" if v != v else f"{v:.1f}"),
                          "cum s": funcs["cum_s"].map("{:.3f}".format)})
    return (f"{head}\nshare of busy time by category (a function no rule names goes with its callers):\n"
            f"{share.to_string(index=False)}\ntop {len(funcs)} functions by self time:\n{table.to_string(index=False)}")

