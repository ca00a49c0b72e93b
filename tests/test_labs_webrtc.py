"""Tests of e2ee_lab.labs.webrtc: notebook 09's tables and the checks of its tasks.

One real aiortc call (e2ee, 3 participants, ci size, 1.5 s, not captured) is shared by the module;
the lab-stack side of the tables is the recorded lab-stack call in ``data/captures/e2ee`` (its
summary.json), so no second call is run. Task 2's SDP pairs are drawn from that call's SDP. Each check is asked the right answer (it must say
"correct") and the typical wrong ones (they must say "not yet" with the matching hint).
"""

from __future__ import annotations

import pandas as pd
import pytest

from e2ee_lab.analysis.views import recording
from e2ee_lab.labs import webrtc as lab
from e2ee_lab.webrtc import PRIVATE_ATTRIBUTES, run_webrtc_call

PEOPLE = 3


@pytest.fixture(scope="module")
def call():
    return run_webrtc_call("e2ee", PEOPLE, 1.5, seed=1, size="ci", capture="off")


def _verdict(feedback) -> str:
    return str(feedback)


# --- tables ------------------------------------------------------------------------------------------


def test_every_private_attribute_is_listed_and_present():
    table = lab.aiortc_attributes()
    assert len(table) == len(PRIVATE_ATTRIBUTES)
    assert list(zip(table["class"], table["attribute"])) == [(c, a) for c, a, _ in PRIVATE_ATTRIBUTES]
    assert table.present.all()


def test_loopback_patch_shows_the_default_and_the_lab_setting():
    table = lab.loopback_patch().set_index("what")
    assert "127.0.0.1" not in table.loc["host addresses aioice gathers", "aiortc's default"]
    assert table.loc["host addresses aioice gathers", "inside the lab's call"] == "127.0.0.1"
    assert "stun:" in table.loc["ICE servers (STUN/TURN)", "aiortc's default"]
    assert "iceServers=[]" in table.loc["ICE servers (STUN/TURN)", "inside the lab's call"]


def test_sdp_tables_show_fingerprints_roles_loopback_and_no_sdes(call):
    lines = lab.sdp_lines(call, "alice")
    assert set(lines.side) == {"offer (SFU)", "answer (alice)"}
    assert set(lines.mid) == {"session", "1"}
    assert lines.line.str.startswith("a=fingerprint:sha-256").sum() == 2
    assert {"a=setup:actpass", "a=setup:active"} <= set(lines.line)
    facts = lab.sdp_facts(call)
    assert len(facts) == 2 * PEOPLE and not facts["a=crypto"].any()
    assert set(facts.addresses) == {"127.0.0.1"} and set(facts.types) == {"host"}
    assert set(facts[facts.sdp == "offer"]["a=setup"]) == {"actpass"}
    assert "sha-256" in facts["fingerprint hashes"].iloc[0]


def test_keylog_table_has_one_leg_per_participant_with_the_sfu_as_server(call):
    table = lab.keylog_table(call)
    assert sorted(table.leg) == sorted(call.names)
    assert set(table.profile) == {call.config.srtp_profile}
    assert (table["DTLS server (the SFU)"] != table["DTLS client"]).all()


def test_uncaptured_calls_give_no_views_and_fall_back_to_live_pictures(call, capsys):
    assert lab.captured_views({"e2ee": call}) is None
    assert "no capture" in capsys.readouterr().out
    figure = lab.views_figure({"e2ee": call}, None)
    assert len(figure.axes) == PEOPLE + 1  # the picture sent, each receiver, the SFU


def test_pli_and_comparison_tables_cover_both_stacks(call):
    lab_side = {"e2ee": recording("e2ee")}
    plis = lab.pli_table(lab_side, {"e2ee": call})
    assert list(plis["stack"]) == ["lab", "webrtc"]
    assert plis.iloc[1]["video frames stolen by the SFU"] > 0
    table = lab.compare_stacks(lab_side, {"e2ee": call})
    assert isinstance(table.columns, pd.MultiIndex)
    assert table.loc["SRTP profile", ("e2ee", "webrtc")] == "AEAD_AES_256_GCM"
    assert table.loc["SFU: video frames it decodes into the picture", ("e2ee", "webrtc")].startswith("0 of")


# --- Task 1 ------------------------------------------------------------------------------------------


def test_the_role_statement_right_answer_is_correct_and_each_wrong_one_gets_its_hint(call):
    assert lab.sfu_role(call) == "server"
    assert lab.check_role_statement(lab.ROLE_STATEMENTS.letter_of("endpoint")).ok
    hints = {"server-sends-keys": "no key travels", "server-cert-only": "answer carries fingerprints",
             "client-blind": "derives exactly the same keys"}
    for option, hint in hints.items():
        feedback = lab.check_role_statement(lab.ROLE_STATEMENTS.letter_of(option))
        assert not feedback.ok and hint in feedback.message
    assert "unanswered" in lab.check_role_statement(None).message
    assert "one letter" in lab.check_role_statement("Z").message


# --- Task 2 (build) ----------------------------------------------------------------------------------


def offerer_role(offer, answer):
    def setup(sdp):
        values = {line.split(":", 1)[1].strip() for line in sdp.splitlines() if line.startswith("a=setup:")}
        if len(values) != 1:
            raise ValueError(values)
        return values.pop()

    mine, theirs = setup(offer), setup(answer)
    if theirs == "active" and mine in ("actpass", "passive"):
        return "server"
    if theirs == "passive" and mine in ("actpass", "active"):
        return "client"
    raise ValueError((mine, theirs))


def _never_refuses(offer, answer):
    try:
        return offerer_role(offer, answer)
    except ValueError:
        return "client"


def test_each_student_gets_sdp_pairs_of_every_valid_kind_and_two_to_refuse(call, monkeypatch):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    orders = set()
    for student in ("", "s1", "s2", "s3"):
        monkeypatch.setenv(session.STUDENT_ENV, student)
        cases = lab._setup_cases(call)
        assert [c[:2] for c in cases] == [c[:2] for c in lab._setup_cases(call)]  # stable per student
        pairs = [c[:2] for c in cases]
        assert set(lab._VALID_SETUPS) <= set(pairs)
        assert sum(lab._offerer_role(*p) is None for p in pairs) == 2
        for setup_offer, setup_answer, offer, answer in cases:
            assert {f"a=setup:{setup_offer}"} == {ln for ln in offer.splitlines() if ln.startswith("a=setup:")}
            assert {f"a=setup:{setup_answer}"} == {ln for ln in answer.splitlines() if ln.startswith("a=setup:")}
            assert "a=fingerprint:" in offer and "a=fingerprint:" in answer
        orders.add(tuple(pairs))
        assert lab.check_offerer_role(offerer_role, call).ok
    assert len(orders) == 4


@pytest.mark.parametrize("func, hint", [
    (lambda o, a: _never_refuses(o, a), "Raise ValueError"),
    (lambda o, a: [ln.split(":", 1)[1] for ln in a.split("\n") if ln.startswith("a=setup:")][0], "CRLF"),
    (lambda o, a: [ln.split(":", 1)[1] for ln in a.splitlines() if ln.startswith("a=setup:")][0], "a=setup value"),
    (lambda o, a: "server" if "a=setup:actpass" in o else "client", "the answer decides"),
    (lambda o, a: None, "returned None"),
    (lambda o, a: 1 / 0, "raised ZeroDivisionError"),
], ids=["never-refuses", "lf-split", "setup-value", "offer-only", "none", "crash"])
def test_the_role_builder_wrong_functions_say_not_yet_with_a_hint(call, func, hint, monkeypatch):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    for student in ("s1", "s2", "s5", "s6"):
        monkeypatch.setenv(session.STUDENT_ENV, student)
        feedback = lab.check_offerer_role(func, call)
        assert not feedback.ok and not feedback.error
        if hint in feedback.message:
            return
    raise AssertionError(f"no student's pairs gave the hint {hint!r}: {feedback.message}")


# --- Task 3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["AEAD_AES_256_GCM", "SRTP_AEAD_AES_256_GCM", "aead-aes-256-gcm"])
def test_srtp_profile_right_answer_is_correct_in_any_spelling(call, answer):
    assert lab.check_srtp_profile(answer, False, call).ok


@pytest.mark.parametrize("profile, named, hint", [
    (None, False, "unanswered"),
    ("AEAD_AES_256_GCM", None, "unanswered"),
    ("sha-256", False, "a=fingerprint"),
    ("AEAD_AES_128_GCM", False, "lab stack's profile"),
    ("AES_CM_128_HMAC_SHA1_80", False, "prefers an AEAD"),
    ("ROT13", False, "another profile"),
    ("AEAD_AES_256_GCM", True, "use_srtp"),
    ("AEAD_AES_256_GCM", "no", "True or False"),
], ids=["unanswered", "half-answered", "hash", "lab-profile", "aes-cm", "nonsense", "in-sdp", "not-bool"])
def test_srtp_profile_wrong_answers_say_not_yet_with_a_hint(call, profile, named, hint):
    feedback = lab.check_srtp_profile(profile, named, call)
    assert not feedback.ok and hint in feedback.message


# --- Task 4 ------------------------------------------------------------------------------------------


def test_the_storm_is_per_student_and_the_usual_slips_get_their_hints(monkeypatch):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    calls = set()
    for student in ("", "s1", "s2", "s3", "s4", "s5", "s6", "s7"):
        monkeypatch.setenv(session.STUDENT_ENV, student)
        storm = lab.task4_call()
        n, fps = storm["participants"], storm["fps"]
        calls.add((n, fps))
        assert lab.check_storm(n * (n - 1) * fps).ok
        slips = {n * fps: "publishers send", (n - 1) * fps: "one publisher's share", n * n * fps: "its own stream",
                 fps: "one stream's frame rate"}
        for value, hint in slips.items():
            feedback = lab.check_storm(value)
            assert not feedback.ok and hint in feedback.message, (value, feedback.message)
        assert "follow one frame" in lab.check_storm(n * (n - 1) * fps + 1).message
    monkeypatch.setenv(session.STUDENT_ENV, "")
    assert lab.task4_call() == {"participants": 3, "fps": 30}
    assert len(calls) >= 4
