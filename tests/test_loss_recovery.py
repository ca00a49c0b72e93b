"""One lost video frame: the SFrame RTP payload format recovers at the next key frame, SFrame inside
the VP8 payload format with a 2-byte CTR never does (real VP8, real SFrame, picture-matched decoding)."""

import math

import pytest

from e2ee_lab.analysis.loss_recovery import loss_comparison, loss_recovery


@pytest.fixture(scope="module")
def two_byte_ctr():
    return loss_comparison(frames=45, drop_frame=15, start_ctr=300)


def test_vp8_packetization_with_a_2_byte_ctr_never_recovers(two_byte_ctr):
    vp8 = two_byte_ctr.loc["vp8"]
    assert 255 < vp8.drop_ctr <= 0xFFFF
    assert vp8.key_frames_sent_after_drop >= 1 and vp8.plis >= 1  # the sender did answer the PLIs
    assert vp8.discarded_waiting == 45 - 15 - 1  # every later frame, real key frames included
    assert math.isnan(vp8.recovered_after_s) and vp8.decoded == 15


@pytest.mark.parametrize("mode", ["per-frame", "per-packet"])
def test_payload_format_recovers_at_the_next_key_frame(two_byte_ctr, mode):
    run = two_byte_ctr.loc[mode]
    assert run.plis >= 1 and run.key_frames_sent_after_drop >= 1
    assert 0 < run.recovered_after_s < 1.0
    assert run.decoded >= 45 - 1 - run.discarded_waiting - 1


def test_unknown_packetization_is_refused():
    with pytest.raises(ValueError):
        loss_recovery("h264")
