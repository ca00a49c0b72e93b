"""The call modes' frame crypto (e2ee_lab.call.frame_keys) with real members, wired in memory.

The members come from an in-memory Group (real X25519, HKDF, AES-GCM key messages); frames go
through the real media pipeline (VP8/Opus encoders, RTP packetizer, reassembly, decoders) with no
sockets. What a malicious SFU does here is what it controls in a call: which member and kind it
announces for a stream (attribution by KID), and what an ex-member injects (retirement).
"""

from __future__ import annotations

import pytest

from e2ee_lab.call.frame_keys import (
    ClearPrefixCrypto,
    SFrameCrypto,
    clear_prefix_key,
    make_frame_crypto,
)
from e2ee_lab.call.pipeline import MediaReceiver, MediaSender
from e2ee_lab.crypto.keys import Group, KIDStreamMismatch, RekeyPolicy
from e2ee_lab.crypto.transforms import ClearPrefixSender, FrameAuthenticationFailed, UnknownKeyIndex
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.media.scene import Scene
from e2ee_lab.media.speech import SpeechSource

POLICY = RekeyPolicy(switch_delay=2.0, grace=10.0, rekey_interval=None)
CHECKED = pytest.mark.parametrize("policy", [POLICY, POLICY.naive()], ids=["fixed", "naive"])
T0 = 5.0  # every member sends under the epoch-2 key by then


def _group(policy: RekeyPolicy) -> Group:
    group = Group(policy=policy, seed=3)  # reproducible keys, explicitly: a test
    for _ in range(3):  # A (0), B (1), C (2)
        group.join(0.0)
    return group


def _bob_to_carol(group: Group, announce: dict[int, tuple[str, int, str]]):
    """Bob's sender and Carol's receiver in e2ee mode; ``announce``: SSRC -> what the SFU says it is."""
    bob = MediaSender("bob", scene=Scene(1, width=160, height=120, fps=15), speech=SpeechSource(),
                      crypto=make_frame_crypto("e2ee", group.members[1]), ssrcs={"video": 1111, "audio": 2222},
                      seed=0, srtp_overhead=16)
    carol = MediaReceiver("carol", crypto=make_frame_crypto("e2ee", group.members[2]), rtcp_ssrc=9,
                          truth=lambda publisher, kind, ts: bob.sent(kind, ts) if publisher == "bob" else None)
    for ssrc, (publisher, member, kind) in announce.items():
        carol.announce(ssrc, publisher, member, kind)
    return bob, carol


def _send(bob: MediaSender, carol: MediaReceiver, frames: int = 6) -> None:
    for i in range(frames):
        now = T0 + i / 15
        for packet in bob.video_frame(i, now) + bob.audio_frame(i, now):
            carol.receive_rtp(packet, now)
    carol.flush(T0 + 1.0)


def test_honest_announcements_decode_everything():
    group = _group(POLICY)
    bob, carol = _bob_to_carol(group, {1111: ("bob", 1, "video"), 2222: ("bob", 1, "audio")})
    _send(bob, carol)
    assert len(carol.records) == 12 and all(r.decoded for r in carol.records) and not carol.dropped


@CHECKED
def test_the_sfu_forwards_bobs_frames_on_alices_stream(policy):
    # Finding 5: Bob's SSRCs announced as Alice's. The fixed receiver drops every frame before
    # decryption and counts kid_stream_mismatch; the naive one decrypts Bob's frames and credits
    # them to Alice.
    group = _group(policy)
    bob, carol = _bob_to_carol(group, {1111: ("alice", 0, "video"), 2222: ("alice", 0, "audio")})
    _send(bob, carol)
    assert len(carol.records) == 12 and {r.publisher for r in carol.records} == {"alice"}
    if policy.checks.attribution:
        assert carol.dropped == {"kid_stream_mismatch": 12}
        assert not any(r.decrypted for r in carol.records)
        assert {r.reason for r in carol.records} == {"kid_stream_mismatch"}
    else:
        assert all(r.decrypted for r in carol.records)  # Bob's media, shown as Alice's
        assert "kid_stream_mismatch" not in carol.dropped


@CHECKED
def test_the_sfu_moves_bobs_audio_into_his_video_stream(policy):
    group = _group(policy)
    bob, carol = _bob_to_carol(group, {1111: ("bob", 1, "video"), 2222: ("bob", 1, "video")})
    _send(bob, carol)
    audio_ssrc = [r for r in carol.records if r.ssrc == 2222]
    assert len(audio_ssrc) == 6
    if policy.checks.attribution:
        assert {r.reason for r in audio_ssrc} == {"kid_stream_mismatch"}
    else:
        assert all(r.decrypted for r in audio_ssrc)  # decrypted, handed to the VP8 decoder
    assert all(r.decoded for r in carol.records if r.ssrc == 1111)


@CHECKED
def test_a_stream_no_member_publishes(policy):
    group = _group(policy)
    frame = SFrameCrypto(group.members[1]).protect(_frame(b"\x00" * 40), T0)
    crypto = SFrameCrypto(group.members[2])
    if policy.checks.attribution:
        with pytest.raises(KIDStreamMismatch, match="no member"):
            crypto.unprotect(frame, None, T0)
    else:
        assert crypto.unprotect(frame, None, T0).data == b"\x00" * 40


# --- the clear-prefix receiver retires old keys -----------------------------------------------------


def _frame(data: bytes, kind: str = "video", timestamp: int = 1000) -> EncodedFrame:
    return EncodedFrame(data, timestamp, FrameMetadata(4242, 96, kind), "delta" if kind == "video" else None)


def _leaver_forges(group: Group, leaver: int, sender: int, epoch: int) -> EncodedFrame:
    """A clear-prefix frame as ``sender``, made by a former member with the key it kept."""
    key = group.former[leaver].snapshot()["keys"][sender, epoch]
    return ClearPrefixSender(clear_prefix_key(key), key_index=epoch % 256).transform(_frame(b"\x10" * 40))


@CHECKED
def test_a_leaver_injects_clear_prefix_frames_under_its_old_key(policy):
    # Findings 3 and 4 in the clear-prefix mode: the receiver used to keep every key index forever.
    group = _group(policy)
    carol = ClearPrefixCrypto(group.members[2])
    alice = ClearPrefixCrypto(group.members[0])
    assert carol.unprotect(alice.protect(_frame(b"\x01" * 40), T0), 0, T0).data == b"\x01" * 40
    group.leave(1, 10.0)
    spoken = alice.protect(_frame(b"\x02" * 40), 12.5)  # epoch 3
    assert spoken.data[-1] == 3 and carol.unprotect(spoken, 0, 12.5).data == b"\x02" * 40
    forged = _leaver_forges(group, 1, 0, 2)
    if policy.checks.retirement:
        with pytest.raises(UnknownKeyIndex):
            carol.unprotect(forged, 0, 20.0)
    else:
        assert carol.unprotect(forged, 0, 20.0).data == b"\x10" * 40
    with pytest.raises(UnknownKeyIndex):  # after the grace period: gone in both
        carol.unprotect(_leaver_forges(group, 1, 0, 2), 0, 22.0)


def test_clear_prefix_keys_follow_the_member_across_epochs():
    group = _group(POLICY)
    carol, alice = ClearPrefixCrypto(group.members[2]), ClearPrefixCrypto(group.members[0])
    early = alice.protect(_frame(b"\x03" * 40), T0)
    group.join(8.0)  # epoch 3: a join, keys ratcheted
    late = alice.protect(_frame(b"\x04" * 40, timestamp=2000), 10.5)
    assert (early.data[-1], late.data[-1]) == (2, 3)
    assert carol.unprotect(late, 0, 10.6).data == b"\x04" * 40
    with pytest.raises(UnknownKeyIndex):  # Alice spoke on epoch 3: her epoch-2 key is retired
        carol.unprotect(early, 0, 10.7)
    audio = alice.protect(_frame(b"\x05" * 20, kind="audio"), 10.8)
    assert carol.unprotect(audio, 0, 10.8).data == b"\x05" * 20


def test_a_clear_prefix_frame_on_another_members_stream_fails_authentication():
    group = _group(POLICY)
    frame = ClearPrefixCrypto(group.members[1]).protect(_frame(b"\x06" * 40), T0)
    carol = ClearPrefixCrypto(group.members[2])
    with pytest.raises(FrameAuthenticationFailed):
        carol.unprotect(frame, 0, T0)  # Bob's frame announced as Alice's: Alice's key does not fit
    with pytest.raises(FrameAuthenticationFailed):
        carol.unprotect(frame, 1, T0, "audio")  # Bob's video as Bob's audio: another clear prefix
    assert carol.unprotect(frame, 1, T0).data == b"\x06" * 40
