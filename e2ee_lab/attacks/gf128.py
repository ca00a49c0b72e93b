"""GF(2^128) as GCM defines it, and polynomials over it: the attacker's algebra for the forbidden attack.

Field elements follow NIST SP 800-38D §6.3: a block's first bit is the coefficient of x^0, and the
product is reduced modulo x^128 + x^7 + x^2 + x + 1 (:func:`gf_mul`, :func:`gf_inv`); GHASH is
§6.4 / §7.1 (:func:`ghash`, and :func:`ghash_coefficients`, the same sum as a polynomial in H).
Polynomials are coefficient lists, lowest degree first; :func:`poly_roots` finds the distinct roots
of one (gcd with X^(2^128) - X, then random trace maps split the product of linear factors), which
:mod:`e2ee_lab.attacks.crypto` uses to recover the GHASH key from two frames that share a nonce
(Joux 2006). ``cryptography`` offers none of this; nothing here touches a key or does I/O.
"""

from __future__ import annotations

import random

BLOCK = 16  # GCM block and tag size in bytes (NIST SP 800-38D)
_MASK128 = (1 << 128) - 1
_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))  # bit-reversal of each byte


# --- GF(2^128) (NIST SP 800-38D §6.3) ------------------------------------------------------------
# A block's first bit is the coefficient of x^0. As Python ints: bit i = coefficient of x^i,
# reduced modulo x^128 + x^7 + x^2 + x + 1.


def to_field(block: bytes) -> int:
    """A 16-byte block as a field element (an int, bit i the coefficient of x^i)."""
    return int.from_bytes(bytes(block).translate(_REV8), "little")


def to_block(x: int) -> bytes:
    """A field element as its 16-byte block."""
    return x.to_bytes(BLOCK, "little").translate(_REV8)


def _mul_table(a: int) -> list[int]:
    """Carry-less products a·n for every 4-bit n (before reduction)."""
    table = [0] * 16
    for n in range(1, 16):
        low = n & -n
        table[n] = table[n ^ low] ^ (a << (low.bit_length() - 1))
    return table


def _mul_with(table: list[int], b: int) -> int:
    acc = 0
    for shift in range(124, -4, -4):  # 32 nibbles of b, most significant first
        acc = (acc << 4) ^ table[b >> shift & 15]
    for _ in range(2):  # fold the top 131 bits back: x^128 = x^7 + x^2 + x + 1
        high = acc >> 128
        acc = (acc & _MASK128) ^ high ^ (high << 1) ^ (high << 2) ^ (high << 7)
    return acc


def gf_mul(a: int, b: int) -> int:
    """Product of two GF(2^128) elements in GCM's representation (as ints, see above)."""
    return _mul_with(_mul_table(a), b)


def gf_inv(a: int) -> int:
    """Inverse in GF(2^128): a^(2^128 - 2). Raises ZeroDivisionError for 0."""
    if not a:
        raise ZeroDivisionError("0 has no inverse in GF(2^128)")
    result, square = 1, a
    for _ in range(127):  # 2^128 - 2 = 2 + 4 + ... + 2^127: multiply a^2, a^4, ..., a^(2^127)
        square = gf_mul(square, square)
        result = gf_mul(result, square)
    return result


def _blocks(data: bytes) -> list[int]:
    return [to_field(data[i : i + BLOCK].ljust(BLOCK, b"\0")) for i in range(0, len(data), BLOCK)]


def ghash_coefficients(aad: bytes, ciphertext: bytes) -> list[int]:
    """GHASH(H, A, C) = sum of c[k]·H^k: c[k] is the k-th block from the end (length block first)."""
    lengths = (8 * len(aad)).to_bytes(8, "big") + (8 * len(ciphertext)).to_bytes(8, "big")
    blocks = _blocks(aad) + _blocks(ciphertext) + [to_field(lengths)]
    return [0] + blocks[::-1]


def ghash(auth_key: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    """GHASH_H(A, C) of NIST SP 800-38D §6.4 / §7.1 (AAD and ciphertext zero-padded, then lengths)."""
    table, x = _mul_table(to_field(auth_key)), 0
    for block in ghash_coefficients(aad, ciphertext)[:0:-1]:  # the blocks in message order
        x = _mul_with(table, x ^ block)
    return to_block(x)


# --- polynomials over GF(2^128): coefficient lists, lowest degree first --------------------------


def _trim(p: list[int]) -> list[int]:
    while p and not p[-1]:
        p.pop()
    return p


def _monic(p: list[int]) -> list[int]:
    inverse = gf_inv(p[-1])
    return [gf_mul(c, inverse) for c in p[:-1]] + [1]


def _divmod(a: list[int], f: list[int]) -> tuple[list[int], list[int]]:
    """(quotient, remainder) of a / f for a monic f."""
    n = len(f) - 1
    tables = [_mul_table(c) for c in f[:n]]
    r, q = list(a), [0] * max(len(a) - n, 0)
    for i in range(len(r) - 1, n - 1, -1):
        lead = r[i]
        if lead:
            q[i - n] = lead
            for j, table in enumerate(tables):
                r[i - n + j] ^= _mul_with(table, lead)
        r.pop()
    return _trim(q), _trim(r)


def _gcd(a: list[int], b: list[int]) -> list[int]:
    while b:
        a, b = b, _divmod(a, _monic(b))[1]
    return _monic(a) if a else a


def _square_mod(p: list[int], f: list[int]) -> list[int]:
    """p^2 mod f: in characteristic 2 squaring only squares the coefficients and doubles degrees."""
    squared = [0] * (2 * len(p) - 1) if p else []
    for i, c in enumerate(p):
        squared[2 * i] = gf_mul(c, c)
    return _divmod(squared, f)[1]


def poly_add(a: list[int], b: list[int]) -> list[int]:
    """a + b (each coefficient XORed), trimmed."""
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    return _trim([c ^ (shorter[i] if i < len(shorter) else 0) for i, c in enumerate(longer)])


def _frobenius_gcd(f: list[int]) -> list[int]:
    """gcd(f, X^(2^128) - X): the product of f's distinct linear factors, i.e. its roots."""
    power = _divmod([0, 1], f)[1]
    for _ in range(128):
        power = _square_mod(power, f)
    return _gcd(f, poly_add(power, [0, 1]))


def _split_roots(g: list[int], rng: random.Random) -> list[int]:
    """The roots of a monic product of distinct linear factors, split with random trace maps."""
    if len(g) <= 1:
        return []
    if len(g) == 2:
        return [g[0]]  # X + c has the root c (minus is plus here)
    while True:
        term = _divmod([0, rng.getrandbits(128)], g)[1]
        trace = term
        for _ in range(127):  # Tr(aX) = sum (aX)^(2^i) mod g takes values 0/1 at each root
            term = _square_mod(term, g)
            trace = poly_add(trace, term)
        factor = _gcd(g, trace)
        if 1 < len(factor) < len(g):
            return _split_roots(factor, rng) + _split_roots(_divmod(g, factor)[0], rng)


def poly_roots(f: list[int], rng: random.Random) -> list[int]:
    """The distinct roots in GF(2^128) of a non-constant ``f`` (``rng`` draws the trace maps)."""
    return _split_roots(_frobenius_gcd(_monic(f)), rng)


def poly_eval(p: list[int], x: int) -> int:
    """p(x)."""
    table, acc = _mul_table(x), 0
    for c in reversed(p):
        acc = _mul_with(table, acc) ^ c
    return acc
