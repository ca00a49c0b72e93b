"""Tests of e2ee_lab.labs.webrtc: notebook 09's tables and the checks of its tasks.

One real aiortc call (e2ee, 3 participants, ci size, 1.5 s, not captured) is shared by the module.
The lab-stack side of Task 3 is the recorded lab-stack call in ``data/captures/e2ee`` (its
summary.json), so no second call is run. Each check is asked the right answer (it must say
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


@pytest.fixture(scope="module")
def summaries(call):
    return {"lab": recording("e2ee").summary, "webrtc": call.summary}


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


def test_sfu_role_right_answer_is_correct(call):
    assert lab.sfu_role(call) == "server"
    feedback = lab.check_sfu_role("server", lab.ROLE_STATEMENTS.letter_of("endpoint"), call)
    assert feedback.ok and _verdict(feedback).startswith("correct")


@pytest.mark.parametrize("role, statement, hint", [
    (None, None, "unanswered"),
    ("client", "endpoint", "a=setup:active"),
    ("active", "endpoint", "a=setup value"),
    ("actpass", "endpoint", "a=setup value"),
    ("DTLS", "endpoint", "'client' or 'server'"),
    ("server", "server-sends-keys", "no key travels"),
    ("server", "server-cert-only", "answer carries fingerprints"),
    ("server", "client-blind", "derives exactly the same keys"),
    ("server", "Z", "one letter"),
], ids=["unanswered", "client", "active", "actpass", "nonsense", "sends-keys", "cert-only", "client-blind", "Z"])
def test_sfu_role_wrong_answers_say_not_yet_with_a_hint(call, role, statement, hint):
    """Statements are named by option id and given by this student's letter for it."""
    if statement in lab.ROLE_STATEMENTS.options:
        statement = lab.ROLE_STATEMENTS.letter_of(statement)
    feedback = lab.check_sfu_role(role, statement, call)
    assert not feedback.ok and _verdict(feedback).startswith("not yet") and hint in feedback.message


# --- Task 2 ------------------------------------------------------------------------------------------


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


# --- Task 3 ------------------------------------------------------------------------------------------


def _sum(summary: dict, field: str) -> int:
    return sum(p[field] for p in summary["participants"])


def test_video_delivered_right_answer_is_correct(summaries):
    answer = {k: _sum(s, "video_frames_decoded") for k, s in summaries.items()}
    assert answer == lab.video_delivered(summaries)
    assert answer["lab"] != answer["webrtc"]  # the recording has 2 participants, the call 3
    feedback = lab.check_video_delivered(answer, summaries)
    assert feedback.ok and "of" in feedback.message


def test_video_delivered_typical_mistakes_get_their_hints(summaries):
    right = lab.video_delivered(summaries)
    swapped = {"lab": right["webrtc"], "webrtc": right["lab"]}
    sent = {k: _sum(s, "video_frames_sent") for k, s in summaries.items()}
    seen = {k: s["sfu"]["video_frames_seen"] for k, s in summaries.items()}
    cases = [(None, "unanswered"), (42, "dict"), ({"lab": 1}, "dict"), ({"lab": "x", "webrtc": 1}, "whole numbers"),
             (swapped, "swapped"), (sent, "frames sent"), (seen, "the SFU saw"),
             ({"lab": 1, "webrtc": 1}, "add up video_frames_decoded")]
    for answer, hint in cases:
        feedback = lab.check_video_delivered(answer, summaries)
        assert not feedback.ok and hint in feedback.message, (answer, feedback)
