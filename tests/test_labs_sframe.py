"""Notebook 03 (SFrame by hand): the per-student header, the strict-parser build task, the bit numbering
and the frame sizes the overhead table states. (Every check's robustness is tested in
tests/test_labs_checks.py, the grader in tests/test_grade.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from e2ee_lab.crypto.sframe import CipherSuite, MalformedHeader, decode_header, encode_header
from e2ee_lab.labs import Probed, session
from e2ee_lab.labs import sframe as lab


@pytest.fixture
def student(monkeypatch):
    """Set the student id of this process (as ``labs.start`` does)."""
    monkeypatch.setattr(session, "_state", {"student": None, "record": None})

    def use(student_id: str) -> None:
        session._state["student"] = student_id or None
        monkeypatch.setenv(session.STUDENT_ENV, student_id)
    return use


# --- Task 1: one header per student ----------------------------------------------------------------


def test_each_student_gets_a_valid_minimal_header_of_their_own(student):
    headers = []
    for i in range(40):
        student(f"s{i}")
        headers.append(lab.task1_header())
        assert lab.task1_header() == headers[-1]  # stable per student
        data = bytes.fromhex(headers[-1])
        kid, ctr, length = decode_header(data)
        assert length == len(data) and encode_header(kid, ctr) == data and ctr >= 8
    assert len(set(headers)) >= 35
    assert {bytes.fromhex(h)[0] >> 7 for h in headers} == {0, 1}  # KIDs in the config byte and in extra bytes


def test_the_check_is_exact_for_each_students_header_and_diagnoses_the_usual_slips(student):
    for i in range(20):
        student(f"s{i}")
        header = lab.task1_header()
        kid, ctr, _ = decode_header(bytes.fromhex(header))
        assert lab.check_header_decoding((kid, ctr), header).ok
        assert not lab.check_header_decoding((kid, ctr + 1), header).ok
        swapped = lab.check_header_decoding((ctr, kid), header)
        assert not swapped.ok and (kid == ctr or "swapped" in swapped.message)
        cfg = lab.check_header_decoding((int(header[:2], 16), ctr), header)
        assert not cfg.ok and (cfg.message.startswith("the first byte is the config byte") or kid == int(header[:2], 16))
        size = len(bytes.fromhex(header)) - 1 - ((int(header[:2], 16) >> 4 & 7) + 1 if int(header[:2], 16) & 0x80 else 0)
        little = int.from_bytes(ctr.to_bytes(size, "big"), "little")
        if size > 1 and little != ctr:
            assert "big-endian" in lab.check_header_decoding((kid, little), header).message


def test_no_hint_names_the_right_values(student):
    student("s7")
    header = lab.task1_header()
    kid, ctr, _ = decode_header(bytes.fromhex(header))
    for wrong in [(0, 0), (kid, 0), (0, ctr), (kid + 1, ctr), (123456, 7)]:
        feedback = lab.check_header_decoding(wrong, header)
        assert not feedback.ok and str(ctr) not in feedback.message.replace(str(wrong[1]), "")


# --- Task 4: the strict parser ---------------------------------------------------------------------


def _reference(data: bytes):
    try:
        return decode_header(data)
    except MalformedHeader as err:
        raise ValueError(str(err)) from None


def _lenient(data: bytes):
    """Reads what the config byte announces and accepts any spelling (and slices past the end)."""
    cfg, pos, values = data[0], 1, []
    for extended, field in ((cfg >> 7, cfg >> 4 & 7), (cfg >> 3 & 1, cfg & 7)):
        if extended:
            values.append(int.from_bytes(data[pos:pos + field + 1], "big"))
            pos += field + 1
        else:
            values.append(field)
    return values[0], values[1], pos


def test_a_strict_parser_passes_and_the_usual_mistakes_do_not(student):
    for name in ("", "s1", "s2"):
        student(name)
        assert lab.check_header_parser(_reference).ok
        lenient = lab.check_header_parser(_lenient)
        assert not lenient.ok and "ValueError" in lenient.message
        assert not lab.check_header_parser(lambda data: decode_header(data)).ok  # MalformedHeader is no ValueError
        little = lab.check_header_parser(lambda data: _reference(data)[:2])
        assert not little.ok and "(kid, ctr, header_length)" in little.message


def test_the_parser_cases_cover_every_shape_and_are_per_student(student):
    student("s1")
    first = lab._parser_cases()
    kinds = [k for k, _ in first]
    assert {"valid", "empty", "truncated", "non-minimal KID", "non-minimal CTR"} == set(kinds)
    for kind, data in first:
        if kind == "valid":
            decode_header(data)
        else:
            with pytest.raises(MalformedHeader):
                decode_header(data)
    student("s2")
    assert lab._parser_cases() != first


def test_the_grader_path_judges_recorded_outputs_only():
    outputs = [{"kind": k, "value": list(decode_header(d))} if k == "valid" else {"kind": k, "raised": "ValueError"}
               for k, d in lab._parser_cases()]
    assert not lab.check_header_parser(Probed(outputs)).ok  # a list is not the tuple asked for
    assert not lab.check_header_parser(Probed("junk")).ok
    assert not lab.check_header_parser(Probed([None] * len(outputs))).ok


# --- the walk-through ------------------------------------------------------------------------------


def test_the_config_byte_table_gives_both_bit_numberings():
    table = lab.config_byte_table(encode_header(0x123, 0x4567))
    assert list(table.field) == ["X", "K", "Y", "C"]
    assert list(table["RFC figure's bits"]) == ["0", "1-3", "4", "5-7"]
    assert table.iloc[0, 1] == "bit 7"


def test_the_frame_sizes_the_overhead_table_states_are_the_encoders():
    """LAB_FRAMES (and the texts quoting them) say what the lab's own encoders produce: measured again."""
    from e2ee_lab.media.codecs import OpusEncoder, VP8Encoder
    from e2ee_lab.media.scene import Scene
    from e2ee_lab.media.speech import SpeechSource, chunk_count, load_speech

    sample = load_speech()
    encoder = OpusEncoder(ssrc=1)
    opus = [len(f.data) for c in SpeechSource(sample).chunks(chunk_count(sample.duration))
            if (f := encoder.encode(c)) is not None]
    video = VP8Encoder(ssrc=1, fps=30)
    vp8 = [len(f.data) for frame in Scene(0, width=640, height=480, fps=30).frames(90)
           if (f := video.encode(frame)) is not None]
    stated = list(lab.LAB_FRAMES.values())
    assert np.mean(opus) == pytest.approx(stated[0], rel=0.1)
    assert np.mean(vp8[1:]) == pytest.approx(stated[1], rel=0.15)
    assert vp8[0] == pytest.approx(stated[2], rel=0.1)
    table = lab.overhead_table()
    gcm = table[table.suite == CipherSuite.AES_128_GCM_SHA256_128.name].set_index("frame")["overhead %"]
    assert 6 < gcm.iloc[0] < 8 and 1 < gcm.iloc[1] < 1.5 and gcm.iloc[2] < 0.3  # the notebook's 6.5 %, 1.3 %
