"""Serial-number arithmetic for RTP's 16-bit sequence numbers and 32-bit timestamps.

RTP sequence numbers (RFC 3550 §5.1) and timestamps wrap around; comparisons follow serial-number
arithmetic (RFC 1982 §3.2): ``a`` is before ``b`` when ``b - a`` modulo 2^bits lies in
``1 .. 2^(bits-1) - 1``. :class:`SequenceUnwrapper` extends 16-bit numbers to unbounded integers the
way RFC 3550 Appendix A.1 counts cycles, so buffers can sort packets across 65535 -> 0. These are
the layer's only wraparound helpers; the SFU and the receivers import them from here.
"""

from __future__ import annotations

SEQ_BITS = 16
SEQ_MOD = 1 << SEQ_BITS  # RFC 3550 §5.1: the sequence number is 16 bits
TS_BITS = 32
TS_MOD = 1 << TS_BITS  # RFC 3550 §5.1: the timestamp is 32 bits


def _diff(a: int, b: int, bits: int) -> int:
    mod = 1 << bits
    half = mod >> 1
    return ((b - a + half) % mod) - half


def seq_diff(a: int, b: int) -> int:
    """Signed distance from sequence number ``a`` to ``b`` in ``-32768 .. 32767`` (``b - a``)."""
    return _diff(a, b, SEQ_BITS)


def seq_lt(a: int, b: int) -> bool:
    """True when sequence number ``a`` comes before ``b`` (16-bit wraparound)."""
    return seq_diff(a, b) > 0


def seq_add(a: int, n: int) -> int:
    """Sequence number ``a`` advanced by ``n`` (may be negative), modulo 2^16."""
    return (a + n) % SEQ_MOD


def ts_diff(a: int, b: int) -> int:
    """Signed distance from RTP timestamp ``a`` to ``b`` (32-bit wraparound, ``b - a``)."""
    return _diff(a, b, TS_BITS)


def ts_lt(a: int, b: int) -> bool:
    """True when RTP timestamp ``a`` comes before ``b`` (32-bit wraparound)."""
    return ts_diff(a, b) > 0


def ts_add(a: int, n: int) -> int:
    """RTP timestamp ``a`` advanced by ``n``, modulo 2^32."""
    return (a + n) % TS_MOD


class SequenceUnwrapper:
    """Maps 16-bit sequence numbers to extended integers that keep increasing across wraps.

    The first number seen maps to itself; every later one maps to the extended value closest to
    the highest extended value seen so far, so reordering by up to 32767 packets either way is
    placed correctly. State: the highest extended value.
    """

    def __init__(self) -> None:
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """The highest extended sequence number unwrapped so far (None before the first)."""
        return self._highest

    def unwrap(self, seq: int) -> int:
        """Return the extended value of ``seq`` (0..65535) and update the highest value seen."""
        if not 0 <= seq < SEQ_MOD:
            raise ValueError(f"sequence number {seq} is outside 0..65535")
        if self._highest is None:
            self._highest = seq
            return seq
        ext = self._highest + seq_diff(self._highest % SEQ_MOD, seq)
        self._highest = max(self._highest, ext)
        return ext
