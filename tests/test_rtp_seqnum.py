"""Serial-number arithmetic (RFC 1982 §3.2) for RTP sequence numbers and timestamps."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from e2ee_lab.rtp.seqnum import (
    SequenceUnwrapper,
    seq_add,
    seq_diff,
    seq_lt,
    ts_add,
    ts_diff,
    ts_lt,
)


@pytest.mark.parametrize(
    ("a", "b", "diff"),
    [(0, 1, 1), (65535, 0, 1), (0, 65535, -1), (100, 32867, 32767), (0, 32768, -32768), (7, 7, 0)],
    ids=["step", "wrap-forward", "wrap-back", "max-forward", "half-ambiguous", "equal"],
)
def test_seq_diff(a, b, diff):
    assert seq_diff(a, b) == diff


def test_seq_lt_across_wrap():
    assert seq_lt(65535, 0)
    assert not seq_lt(0, 65535)
    assert seq_lt(65000, 100)
    assert not seq_lt(5, 5)


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_seq_lt_is_antisymmetric(a, b):
    d = seq_diff(a, b)
    if d in (0, -32768):
        assert not seq_lt(a, b) and not seq_lt(b, a)
    else:
        assert seq_lt(a, b) != seq_lt(b, a)
    assert seq_add(a, d) == b


def test_timestamp_helpers_wrap_at_32_bits():
    assert ts_diff(0xFFFFFFF0, 0x10) == 0x20
    assert ts_lt(0xFFFFFFF0, 0x10)
    assert not ts_lt(0x10, 0xFFFFFFF0)
    assert ts_add(0xFFFFFFFF, 1) == 0
    assert seq_add(65535, 2) == 1
    assert seq_add(0, -1) == 65535


def test_unwrapper_counts_cycles():
    unwrap = SequenceUnwrapper()
    values = [unwrap.unwrap(s) for s in (65533, 65534, 65535, 0, 1, 65535, 2)]
    assert values == [65533, 65534, 65535, 65536, 65537, 65535, 65538]
    assert unwrap.highest == 65538


@given(
    start=st.integers(0, 200_000),
    steps=st.lists(st.integers(-300, 600), min_size=1, max_size=200),
)
def test_unwrapper_recovers_true_values_under_bounded_jumps(start, steps):
    unwrap = SequenceUnwrapper()
    true = start
    assert unwrap.unwrap(true % 65536) == true % 65536
    offset = true - true % 65536
    highest = true
    for step in steps:
        true = max(true + step, highest - 30_000)
        highest = max(highest, true)
        assert unwrap.unwrap(true % 65536) + offset == true


@pytest.mark.parametrize("bad", [-1, 65536])
def test_unwrapper_rejects_out_of_range(bad):
    with pytest.raises(ValueError):
        SequenceUnwrapper().unwrap(bad)
