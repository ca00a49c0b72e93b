"""Metadata leakage from the SFU's view of real calls (e2ee_lab.analysis.leakage, labs.leakage),
the sender options that mitigate it (Opus CBR, padding, no audio level) and the padding format.

Six short ci calls run once per module: e2ee as browsers send, e2ee with each mitigation alone (no
audio level; Opus CBR), with both, with audio padded to one 512-byte bucket, and clear-prefix. The
classifier trains on one participant and is scored on the two others against the speech sample's
ground truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from e2ee_lab.analysis import leakage
from e2ee_lab.call import SenderOptions, run_call
from e2ee_lab.call.frame_keys import make_frame_crypto
from e2ee_lab.call.pipeline import MediaReceiver, MediaSender
from e2ee_lab.crypto.keys import kid_for
from e2ee_lab.labs import leakage as lab
from e2ee_lab.media.codecs import OpusDecoder, OpusEncoder
from e2ee_lab.media.padding import MAX_BUCKET, BadPadding, check_bucket, pad_frame, padded_length, unpad_frame
from e2ee_lab.media.scene import Scene
from e2ee_lab.media.speech import SpeechSource

SECONDS = 2.5
NEAR = 0.03  # "near the baseline": within 3 points of accuracy


@pytest.fixture(scope="module")
def e2ee():
    return run_call("e2ee", participants=3, seconds=SECONDS, seed=0, size="ci")


@pytest.fixture(scope="module")
def no_level():
    return run_call("e2ee", participants=3, seconds=SECONDS, seed=0, size="ci",
                    sender_options=SenderOptions(audio_level=False))


@pytest.fixture(scope="module")
def cbr():
    return run_call("e2ee", participants=3, seconds=SECONDS, seed=0, size="ci",
                    sender_options=SenderOptions(opus_cbr=True))


@pytest.fixture(scope="module")
def cbr_no_level():
    return run_call("e2ee", participants=3, seconds=SECONDS, seed=0, size="ci",
                    sender_options=SenderOptions(opus_cbr=True, audio_level=False))


@pytest.fixture(scope="module")
def padded():
    return run_call("e2ee", participants=3, seconds=SECONDS, seed=0, size="ci",
                    sender_options=SenderOptions(audio_padding=512))


@pytest.fixture(scope="module")
def clear():
    return run_call("clear-prefix", participants=3, seconds=1.0, seed=0, size="ci")


# --- who speaks when ---------------------------------------------------------------------------------


def test_packet_sizes_alone_beat_the_majority_baseline(e2ee):
    inf = leakage.infer_speaking(e2ee, "size")
    print(f"\nsizes: accuracy {inf.test.accuracy:.3f}, baseline {inf.test.baseline:.3f}, rule {inf.rule}")
    assert inf.test.frames >= 200 and set(inf.frames[inf.frames.role == "test"].publisher) == {"bob", "carol"}
    assert inf.test.accuracy >= inf.test.baseline + 0.10
    assert inf.test.precision > 0.9 and inf.test.recall > 0.8


def test_the_scores_table_reports_accuracy_and_baseline_per_feature(e2ee):
    table = leakage.speaking_scores(e2ee)
    print("\n" + table.to_string())
    assert list(table.index) == list(leakage.SIGNALS.values())
    assert list(table.index) == ["RFC 6464 audio level", "RFC 6464 V bit", "packet size (SFrame body)"]
    assert table["in the packets"].all()
    assert ((table.accuracy > table.baseline) & (table.accuracy <= 1) & (table.baseline >= 0.5)).all()


def test_audio_levels_give_the_speakers_away(e2ee):
    level = leakage.infer_speaking(e2ee, "level")
    assert level.rule.above is False and level.test.accuracy >= level.test.baseline + 0.15


def test_dropping_the_audio_level_extension_removes_the_level_leak(cbr_no_level):
    view = cbr_no_level.view
    assert view[view.kind == "audio"].audio_level.isna().all()
    for feature in ("level", "vad"):
        inf = leakage.infer_speaking(cbr_no_level, feature)
        assert not inf.available and np.isnan(inf.rule.threshold)
        assert abs(inf.test.accuracy - inf.test.baseline) <= NEAR


def test_opus_cbr_brings_size_inference_down_to_the_baseline(cbr_no_level):
    frames = leakage.audio_packets(cbr_no_level)
    assert frames.body_size.nunique() == 1  # 240-byte Opus frames + the 16-byte tag
    inf = leakage.infer_speaking(frames, "size")
    print(f"\nCBR: accuracy {inf.test.accuracy:.3f}, baseline {inf.test.baseline:.3f}")
    assert abs(inf.test.accuracy - inf.test.baseline) <= NEAR


def test_padding_to_one_bucket_hides_sizes_and_receivers_strip_it(e2ee, padded):
    frames = leakage.audio_packets(padded)
    assert set(frames.body_size) == {512 + 16}
    inf = leakage.infer_speaking(frames, "size")
    assert abs(inf.test.accuracy - inf.test.baseline) <= NEAR
    for p in padded.summary["participants"]:
        assert p["audio_frames_decoded"] == p["audio_frames_expected"] > 0
        assert not any("padding" in reason for reason in p["dropped"])
    sent = padded.sent[padded.sent.kind == "audio"]
    assert (sent.encoded_size + 2 <= 512).all() and (sent.sent_size > 512 + 16).all()
    table = leakage.mitigation_table({"reference": e2ee, "padded": padded})
    print("\n" + table.to_string())
    assert table.loc["reference", "bandwidth cost %"] == 0 and table.loc["padded", "bandwidth cost %"] > 30


def test_dropping_the_audio_level_alone_leaves_the_size_leak(e2ee, no_level):
    table = leakage.mitigation_table({"browser": e2ee, "no level": no_level})
    print("\n" + table.to_string())
    browser, row = table.loc["browser"], table.loc["no level"]
    assert row["options"] == "Opus VBR, no audio level, no padding" and not row["audio level in packets"]
    assert abs(row["accuracy from levels"] - row["baseline"]) <= NEAR
    assert row["accuracy from sizes"] >= row["baseline"] + 0.10  # VBR sizes still give speech away
    assert row["accuracy from sizes"] == pytest.approx(browser["accuracy from sizes"], abs=NEAR)
    # the only bytes saved: the RTP header extension (4-byte header + 1-byte element header + level,
    # padded to 4 bytes) on every packet
    assert row["audio RTP bytes/packet"] == pytest.approx(browser["audio RTP bytes/packet"] - 8, abs=1)
    assert row["bandwidth cost %"] < 0


def test_opus_cbr_alone_removes_the_size_leak_but_not_the_level_leak(e2ee, cbr):
    table = leakage.mitigation_table({"browser": e2ee, "cbr": cbr})
    print("\n" + table.to_string())
    browser, row = table.loc["browser"], table.loc["cbr"]
    assert row["options"] == "Opus CBR, audio level, no padding" and row["audio level in packets"]
    assert leakage.audio_packets(cbr).body_size.nunique() == 1
    assert abs(row["accuracy from sizes"] - row["baseline"]) <= NEAR
    assert browser["accuracy from sizes"] >= row["accuracy from sizes"] + 0.10
    assert row["accuracy from levels"] >= row["baseline"] + 0.15  # the level still names the speaker
    # 240 B Opus + 16 B tag + SFrame header + 12 B RTP header + 8 B audio-level extension
    assert row["audio RTP bytes/packet"] == pytest.approx(240 + 16 + 4 + 12 + 8, abs=1)


def test_cbr_without_the_level_brings_both_leaks_to_the_baseline(e2ee, cbr_no_level):
    table = leakage.mitigation_table({"browser": e2ee, "cbr": cbr_no_level})
    browser, cbr = table.loc["browser"], table.loc["cbr"]
    assert browser["audio level in packets"] and not cbr["audio level in packets"]
    assert browser["accuracy from sizes"] > cbr["accuracy from sizes"] + 0.10
    assert browser["accuracy from levels"] > cbr["accuracy from levels"] + 0.10
    for column in ("accuracy from levels", "accuracy from sizes"):
        assert abs(cbr[column] - cbr["baseline"]) <= NEAR
    assert cbr["options"] == "Opus CBR, no audio level, no padding"
    # 240 B Opus + 16 B tag + SFrame header + 12 B RTP header, no extension: 50 packets/s
    assert cbr["audio RTP bytes/packet"] == pytest.approx(240 + 16 + 4 + 12, abs=1)


def test_the_marker_bit_is_zero_without_dtx_and_flags_talkspurts_with_it(e2ee, no_level, cbr, cbr_no_level,
                                                                         padded):
    calls = {"browser": e2ee, "no level": no_level, "cbr": cbr, "cbr, no level": cbr_no_level, "padded": padded}
    for call in calls.values():  # every 20 ms frame is sent: RFC 3551 §4.1, M MUST be 0
        assert not leakage.audio_packets(call).marker.any()
    dtx = {"dtx": leakage.SimulatedDTX(e2ee), "cbr + dtx": leakage.SimulatedDTX(cbr)}
    table = leakage.mitigation_table({**calls, **dtx})
    print("\n" + table.drop(columns="options").to_string())
    starts = leakage.talkspurt_starts(e2ee)
    assert starts.frames >= 250 and starts.frames * (1 - starts.baseline) >= 2  # speech starts at least twice
    for label in calls:
        assert table.loc[label, "starts marked (M bit recall)"] == 0
        assert table.loc[label, "accuracy from gaps"] == table.loc[label, "baseline"]  # a packet every slot
    for label in dtx:
        row = table.loc[label]
        assert row["starts marked (M bit recall)"] >= 0.75 and row["marks at a start (precision)"] >= 0.5
        assert row["accuracy from gaps"] >= row["baseline"] + 0.10  # the gaps leak, CBR or not
        assert row["accuracy from sizes"] >= row["baseline"] + 0.10
        assert row["bandwidth cost %"] < 0 and row["options"].endswith("DTX (simulated)")


def test_simulated_dtx_drops_the_unvoiced_packets_and_marks_the_next(e2ee, no_level):
    frames = leakage.dtx_packets(leakage.SimulatedDTX(e2ee))
    assert len(frames) == len(leakage.audio_packets(e2ee))  # one row per 20 ms slot
    assert (frames.sent == frames.voice_activity.astype(bool)).all()
    gaps = frames[~frames.sent]
    assert len(gaps) and (gaps["size"] == 0).all() and (gaps.audio_level == 127).all() and not gaps.marker.any()
    after_gap = frames.sent & ~frames.groupby("publisher").sent.shift(1, fill_value=False).astype(bool)
    assert (frames.marker.astype(bool) == after_gap).all()
    with pytest.raises(ValueError, match="audio level"):
        leakage.dtx_packets(no_level)


def test_talkspurt_starts_scores_the_marks_where_speech_begins(e2ee):
    frames = leakage.audio_packets(e2ee)
    late = frames.assign(marker=frames.groupby("publisher").marker.shift(3, fill_value=0))
    assert leakage.talkspurt_starts(late).recall == 0  # marks three frames late flag no start
    toy = pd.DataFrame({"publisher": ["a"] * 6 + ["b"] * 3, "marker": [1, 0, 1, 0, 0, 1, 1, 1, 0],
                        "speaking": pd.array([False, False, True, True, False, True, True, False, True],
                                             dtype="boolean")})
    # a's starts at 2 and 5, both marked; b's first frame left out, its start at 2 unmarked, its mark at 1 wrong
    s = leakage.talkspurt_starts(toy)
    assert (s.frames, s.recall, s.precision) == (7, pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_the_timeline_has_truth_and_both_verdicts_per_frame(e2ee):
    timeline = leakage.speaking_timeline(e2ee)
    assert {"speaking", "from_level", "from_size"} <= set(timeline.columns)
    assert set(timeline.attrs["rules"]) == {"level", "size"}
    assert len(timeline) == len(e2ee.sent[e2ee.sent.kind == "audio"])


# --- video, SFrame headers, clear prefixes -----------------------------------------------------------


def test_key_frames_stand_out_by_size_although_encrypted(e2ee):
    frames = leakage.video_frames(e2ee)
    first = frames.groupby("ssrc").head(1)  # every stream starts with a key frame
    assert len(first) == 3 and (first.frame_type == "key").all() and first.key_guess.all()
    result = leakage.key_frame_score(frames)
    assert result.recall >= 0.5 and result.precision >= 0.5 and result.accuracy >= result.baseline


def test_the_kid_names_the_sender_and_the_ctr_its_frame_rate(e2ee):
    table = leakage.kid_table(e2ee)
    assert len(table) == 6 and sorted(table.kind) == ["audio"] * 3 + ["video"] * 3
    for row in table.itertuples(index=False):
        leg = row[table.columns.get_loc("arrived on leg")]
        assert row.member == e2ee.members[leg] and row.kid == kid_for(row.epoch, row.member, row.kind)
        assert row[table.columns.get_loc("roster name")] == leg and row.streams == row.kind
        # one CTR per KID, so per sender and kind: the rate its own records say for that kind
        fps = lab.sent_rate(e2ee, leg, row.kind)
        assert row[table.columns.get_loc("CTR per second")] == pytest.approx(fps, rel=0.1)


def test_each_stream_runs_at_its_frame_rate(e2ee):
    table = leakage.stream_table(e2ee)
    for row in table.itertuples(index=False):
        expected = lab.sent_rate(e2ee, row.leg, row.kind)
        assert row[table.columns.get_loc("frames per second")] == pytest.approx(expected, rel=0.1)


def test_clear_prefix_key_frames_reveal_the_resolution_and_sframe_none(clear, e2ee):
    shown = leakage.resolutions(clear)
    for row in shown.itertuples(index=False):
        scene = clear.scenes[row.publisher]
        assert (row[shown.columns.get_loc("width read")], row[shown.columns.get_loc("height read")]) == (
            scene.width, scene.height)
        assert row[shown.columns.get_loc("Opus TOC read")].startswith("CELT-only, fullband, 20 ms")
    hidden = leakage.resolutions(e2ee)
    assert hidden["key frames read"].sum() == 0 and hidden["width read"].isna().all()
    assert set(hidden["Opus TOC read"]) == {"(encrypted)"}


def test_the_results_table_names_every_finding(e2ee, clear, cbr_no_level):
    table = lab.results_table(e2ee, clear, {"CBR, no level": cbr_no_level})
    assert "320x240" in table.loc["picture size from clear-prefix VP8 key frames", "measured"]
    assert table.loc["talkspurt starts flagged by the RTP marker bit", "measured"].startswith("recall ")
    mitigated = table.loc["after mitigation 'CBR, no level': from levels / from sizes / from gaps / talkspurt "
                          "starts marked", "measured"]
    assert mitigated.count("%") == 4
    assert table.loc["senders named by the SFrame KID", "measured"] == "6 of 6 KIDs"  # per sender and kind


def test_the_task_checks_judge_answers(e2ee):
    assert not lab.check_size_threshold(None, e2ee) and not lab.check_size_threshold(1e9, e2ee)
    frames = leakage.audio_packets(e2ee)
    rule = leakage.infer_speaking(frames, "size").rule
    assert lab.check_size_threshold(rule.threshold, e2ee)
    def origin(headers, members):
        member = leakage.parse_kid(int(headers.kid.iloc[0])).member
        span = headers.time.max() - headers.time.min()
        return {i: n for n, i in members.items()}[member], (headers.ctr.max() - headers.ctr.min()) / span

    def counting(headers, members):  # counts headers: wrong where frames were lost
        return origin(headers, members)[0], (len(headers) - 1) / (headers.time.max() - headers.time.min())

    def by_position(headers, members):  # the member index taken as a position in the roster
        return list(members)[leakage.parse_kid(int(headers.kid.iloc[0])).member % len(members)], origin(headers, members)[1]

    assert lab.check_stream_origin(origin, e2ee)
    assert "header field counts every frame" in lab.check_stream_origin(counting, e2ee).message
    assert not lab.check_stream_origin(counting, e2ee) and not lab.check_stream_origin(by_position, e2ee)
    assert not lab.check_stream_origin(lambda h, m: None, e2ee) and not lab.check_stream_origin(None, e2ee)
    largest = int(e2ee.sent[e2ee.sent.kind == "audio"].encoded_size.max())
    need = padded_length(largest, 64)
    assert lab.check_bucket(need, e2ee) and not lab.check_bucket(need - 64, e2ee)
    assert not lab.check_bucket(need + 64, e2ee) and not lab.check_bucket(100, e2ee)
    for wrong in (need - 64, need + 64, need + 128, 64):  # a hint names a mistake, never the bucket
        assert str(need) not in lab.check_bucket(wrong, e2ee).message


# --- the classifier ----------------------------------------------------------------------------------


def test_fit_threshold_separates_separable_data_and_guesses_the_majority_otherwise():
    rule = leakage.fit_threshold([100, 120, 300, 400], [False, False, True, True], above=True)
    assert rule.threshold == 210 and list(rule.predict([119, 211])) == [False, True]
    quiet = leakage.fit_threshold([20, 30, 60, 62], [True, True, False, False], above=False)
    assert quiet.threshold == 45 and list(quiet.predict([10, 61])) == [True, False]
    flat = leakage.fit_threshold([7, 7, 7], [True, True, False])
    assert list(flat.predict([7, 7])) == [True, True]
    missing = leakage.fit_threshold([np.nan, np.nan, np.nan], [False, False, True])
    assert np.isnan(missing.threshold) and list(missing.predict([1, np.nan])) == [False, False]


def test_score_counts_per_frame():
    s = leakage.score([True, True, False, False], [True, False, False, True])
    assert (s.frames, s.accuracy, s.precision, s.recall, s.baseline) == (4, 0.5, 0.5, 0.5, 0.5)
    assert np.isnan(leakage.score([False, False], [True, False]).precision)
    with pytest.raises(ValueError, match="2 predictions for 3 frames"):
        leakage.score([True, False], [True, False, True])


def test_unknown_features_and_splits_are_refused(e2ee):
    with pytest.raises(ValueError, match="feature"):
        leakage.infer_speaking(e2ee, "pitch")
    with pytest.raises(ValueError, match="split"):
        leakage.infer_speaking(e2ee, "size", split="random")
    by_time = leakage.infer_speaking(e2ee, "size", split="time")
    assert set(by_time.frames.role) == {"train", "test"}
    without_truth = leakage.audio_packets(e2ee).assign(speaking=None)
    with pytest.raises(ValueError, match="ground truth"):
        leakage.infer_speaking(without_truth, "size")


def test_only_sframe_calls_have_sframe_headers(clear):
    assert leakage.sframe_headers(clear).empty and leakage.kid_table(clear).empty


@pytest.mark.parametrize(("toc", "text"), [
    (0xFC, "CELT-only, fullband, 20 ms, stereo, 1 frame"),
    (0x08, "SILK-only, narrowband, 20 ms, mono, 1 frame"),
    (0x7B, "Hybrid, fullband, 20 ms, mono, any number of frames"),
], ids=["celt-fb", "silk-nb", "hybrid-fb"])
def test_opus_toc_in_words(toc, text):
    assert leakage.describe_opus_toc(toc) == text


def test_opus_toc_must_be_a_byte():
    with pytest.raises(ValueError):
        leakage.describe_opus_toc(256)


def test_frame_start_skips_continuation_packets_and_junk():
    assert leakage.frame_start("video", b"\x90\x80\x80\x01" + b"\x11" * 8) == b"\x11" * 8
    assert leakage.frame_start("video", b"\x80\x80\x80\x01" + b"\x11" * 8) is None  # S bit clear
    assert leakage.frame_start("video", b"\x90") is None and leakage.frame_start("audio", b"") is None


# --- sender options and the padding format ---------------------------------------------------------


def test_opus_cbr_frames_are_all_240_bytes_and_decode():
    encoder, decoder, speech = OpusEncoder(ssrc=1, cbr=True), OpusDecoder(), SpeechSource()
    frames = [encoder.encode(speech.chunk(i)) for i in range(60)]
    assert {len(f.data) for f in frames} == {240}
    assert all(len(decoder.decode(f.data)) == 960 for f in frames)


@given(st.binary(max_size=700), st.integers(min_value=1, max_value=1024))
def test_padding_round_trips_to_a_multiple_of_the_bucket(data, bucket):
    padded = pad_frame(data, bucket)
    assert len(padded) % bucket == 0 and len(padded) >= len(data) + 2
    assert len(padded) == padded_length(len(data), bucket) and unpad_frame(padded) == data


@pytest.mark.parametrize("data", [b"", b"\x02", b"abc\x00\x01", b"abc\x00\x09", b"ab\x01\x00\x03"],
                         ids=["empty", "one-byte", "count-below-2", "count-too-large", "non-zero-padding"])
def test_bad_padding_is_refused(data):
    with pytest.raises(BadPadding) as err:
        unpad_frame(data)
    assert err.value.reason == "bad_padding"


@pytest.mark.parametrize("bucket", [0, -1, True, 1.5, MAX_BUCKET + 1], ids=str)
def test_bad_buckets_are_refused(bucket):
    with pytest.raises(ValueError):
        check_bucket(bucket)
    with pytest.raises(ValueError):
        SenderOptions(audio_padding=bucket)


def _pair(sender_options: SenderOptions, receiver_options: SenderOptions):
    crypto = make_frame_crypto("dtls-srtp", None)
    sender = MediaSender("alice", scene=Scene(0, width=160, height=120, fps=15), speech=SpeechSource(),
                         crypto=crypto, ssrcs={"video": 1111, "audio": 2222}, seed=0, srtp_overhead=16,
                         options=sender_options)
    receiver = MediaReceiver("bob", crypto=crypto, rtcp_ssrc=9, options=receiver_options,
                             truth=lambda pub, kind, ts: sender.sent(kind, ts))
    receiver.announce(2222, "alice", 0, "audio")
    for i in range(10):
        for packet in sender.audio_frame(i, i * 0.02):
            receiver.receive_rtp(packet, i * 0.02)
    receiver.flush(1.0)
    return sender, receiver


def test_padded_audio_round_trips_in_memory_and_records_truth():
    sender, receiver = _pair(SenderOptions(audio_padding=128), SenderOptions(audio_padding=128))
    assert len(receiver.records) == 10 and all(r.decoded for r in receiver.records)
    assert all(r.sent_size % 128 == 0 and r.sent_size >= r.encoded_size + 2 for r in sender.records)
    assert [r.speaking for r in sender.records] == [SpeechSource().chunk(i).speaking for i in range(10)]


def test_a_receiver_expecting_padding_counts_unpadded_frames_as_bad_padding():
    _, receiver = _pair(SenderOptions(), SenderOptions(audio_padding=128))
    bad = [r for r in receiver.records if r.reason == "bad_padding"]
    assert len(bad) >= 8 and receiver.dropped["bad_padding"] == len(bad)
    assert not any(r.decoded for r in bad)
