"""Notebook 00 (overview): the threat-model figure and data, the labs map, the task checks against real
calls. (The grader is tested in tests/test_grade.py.)"""

from __future__ import annotations

import nbformat
import pytest
from matplotlib.figure import Figure
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from e2ee_lab.analysis import threat_model
from e2ee_lab.call import run_call
from e2ee_lab.labs import overview


@pytest.fixture(scope="module")
def calls():
    """One short real call per mode (2 participants keep it quick)."""
    return {mode: run_call(mode, 2, 1.0, seed=0, size="ci") for mode in threat_model.MODES}


# --- threat model ------------------------------------------------------------------------------------


def test_figure_builds_with_both_rows_and_the_legend():
    fig = threat_model.threat_model_figure()
    assert isinstance(fig, Figure)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert [t.split(":")[0] for t in titles if t] == list(threat_model.MODES)
    assert any("SFU: privileged decryption point" in t for t in texts)
    assert sum("S" == t for t in texts) == 2  # the frame key sits with sender and receiver, in e2ee only
    assert any(t.startswith("S: alice's frame key") for t in texts)


@pytest.mark.parametrize("mode", threat_model.MODES)
def test_model_key_holders_match_a_real_call(mode, calls):
    result = calls[mode]
    assert threat_model.key_holders(mode, result.names) == result.key_holders


@pytest.mark.parametrize("mode", threat_model.MODES)
def test_model_readers_match_a_real_call(mode, calls):
    assert overview.media_readers(calls[mode]) == threat_model.media_readers(mode, calls[mode].names)


def test_threat_table_says_the_sfu_holds_leg_keys_but_no_frame_key():
    table = threat_model.threat_table()
    assert set(table["mode"]) == set(threat_model.MODES)
    assert table[table.symbol.str.startswith("K")]["SFU holds it"].all()
    frame = table[table.symbol == "S"]
    assert list(frame["mode"]) == ["e2ee"] and not frame["SFU holds it"].any()


def test_unknown_mode_is_a_value_error():
    with pytest.raises(ValueError, match="mode must be one of"):
        threat_model.key_holders("clear")


# --- labs map ----------------------------------------------------------------------------------------


def test_labs_map_lists_every_notebook_present():
    table = overview.labs_map()
    present = [p.name for p in overview.lab_notebooks()]
    assert list(table["notebook"]) == present
    assert "00_overview.ipynb" in present
    assert table["title"].str.len().gt(0).all()
    assert not table["title"].str.startswith("Lab ").any()


def _lab_notebook(folder, name, header):
    nb = new_notebook(cells=[new_markdown_cell(header), new_code_cell("x = 1")])
    nbformat.write(nb, folder / name)


def test_labs_map_reads_time_and_prerequisites_in_both_header_styles(tmp_path):
    _lab_notebook(tmp_path, "01_a.ipynb", "# Lab 01 — First\n\n## Prerequisites\n\n| concept | importance |\n"
                  "|---|---|\n| Lab 00 (overview) | helpful |\n\n**Time to complete:** about 25 minutes.")
    _lab_notebook(tmp_path, "02_b.ipynb", "# Lab 02 — Second\n\n**Prerequisites.** Lab 01 (the call). Labs 00 "
                  "and 03 help but are not required. Needs CAP_NET_RAW for sniffing.\n\n**Time.** About 40 minutes.")
    _lab_notebook(tmp_path, "03_c.ipynb", "# Third, with no time line")
    _lab_notebook(tmp_path, "04_d.ipynb", "# Lab 04 — Fourth\n\n**Needs:** root and a server package for the "
                  "live calls; without them, recorded results.")
    (tmp_path / "notes.ipynb").write_text("not a lab")
    table = overview.labs_map(tmp_path).set_index("lab")
    assert list(table.index) == ["01", "02", "03", "04"]
    assert table.loc["04", "needs root?"] == overview.ROOT_LIVE
    assert table.loc["01", "time"] == "25 min" and table.loc["01", "prerequisites"] == "none (00 helpful)"
    assert table.loc["02", "time"] == "40 min" and table.loc["02", "prerequisites"] == "01 (00, 03 helpful)"
    assert table.loc["02", "needs root?"] == overview.NO_ROOT_PATH and table.loc["01", "needs root?"] == "no"
    assert table.loc["03", "time"] == "?" and table.loc["03", "title"] == "Third, with no time line"


def test_read_lab_rejects_a_name_without_a_number(tmp_path):
    with pytest.raises(ValueError, match="NN_name"):
        overview.read_lab(tmp_path / "overview.ipynb")


# --- checks ------------------------------------------------------------------------------------------


def test_leg_key_check(calls):
    plain = calls["dtls-srtp"]
    assert overview.check_leg_key({"alice", "sfu"}, plain).ok
    assert overview.check_leg_key(["SFU", "Alice"], plain).ok
    unanswered = overview.check_leg_key(None, plain)
    assert not unanswered and "unanswered" in unanswered.message
    no_sfu = overview.check_leg_key({"alice"}, plain)
    assert not no_sfu and "other end" in no_sfu.message
    receiver = overview.check_leg_key({"alice", "bob", "sfu"}, plain)
    assert not receiver and "its own handshake" in receiver.message and "bob" not in receiver.message
    assert "set of names" in overview.check_leg_key("alice, sfu", plain).message
    sender = overview.check_leg_key({"sfu"}, plain)
    assert not sender and "alice" not in sender.message and "missing" not in sender.message
    relay = overview.check_leg_key({"alice", "sfu", "relay"}, plain)
    assert not relay and "not one of the handshake's two ends" in relay.message
    assert overview.check_leg_key({"bob", "sfu"}, plain, "bob").ok  # the student's participant


def test_media_readers_check(calls):
    good = {"dtls-srtp": {"alice", "bob", "sfu"}, "e2ee": {"alice", "bob"}}
    assert overview.check_media_readers(good, calls).ok
    sfu_reads_e2ee = overview.check_media_readers({**good, "e2ee": {"alice", "bob", "sfu"}}, calls)
    assert not sfu_reads_e2ee and "decoded 0" in sfu_reads_e2ee.message
    sfu_missing = overview.check_media_readers({**good, "dtls-srtp": {"alice", "bob"}}, calls)
    assert not sfu_missing and "holds the leg key" in sfu_missing.message
    member = overview.check_media_readers({**good, "e2ee": {"alice"}}, calls)
    assert not member and "missing" not in member.message and "bob" not in member.message
    assert "keys" in overview.check_media_readers({"e2ee": {"alice"}}, calls).message
    assert not overview.check_media_readers(None, calls)


def test_sfu_view_table_counts_what_the_sfu_decoded(calls):
    table = overview.sfu_view_table(calls)
    assert table.loc["dtls-srtp", "pictures the SFU decoded"] > 0
    assert table.loc["e2ee", "pictures the SFU decoded"] == 0
    relayed = table["key messages relayed (sealed)"]
    assert relayed["e2ee"] > 0 and relayed["dtls-srtp"] == 0


def test_task1_setting_is_per_student(monkeypatch):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    monkeypatch.delenv(session.STUDENT_ENV, raising=False)
    assert overview.task1_setting() == ("bob", overview.RELAYS[0])
    settings = set()
    for i in range(30):
        session._state["student"] = f"s{i}"
        settings.add(overview.task1_setting())
    assert len(settings) > 6 and {who for who, _ in settings} == set(threat_model.DEFAULT_NAMES)


def _rule(path, relays, e2ee):
    return {path[0], path[-1]} if e2ee else {p for p in path if p not in relays}


def test_the_readers_build_task_takes_the_rule_and_refuses_the_usual_mistakes():
    assert overview.check_readers(_rule).ok
    only_members = overview.check_readers(lambda path, relays, e2ee: {path[0], path[-1]})
    assert not only_members and "e2ee=False" in only_members.message
    relays_read = overview.check_readers(lambda path, relays, e2ee: _rule(path, set(), e2ee))
    assert not relays_read and "relays [" in relays_read.message
    first_sfu_only = overview.check_readers(
        lambda path, relays, e2ee: _rule(path, relays, e2ee) - set(path[2:-1]) if len(path) == 4 and not relays
        else _rule(path, relays, e2ee))
    assert not first_sfu_only  # the cascade: both SFUs read
    assert not overview.check_readers(lambda path, relays, e2ee: set(path) | {"eve"})
    assert not overview.check_readers(lambda path, relays, e2ee: list(path))  # a list is no set? names count
    assert not overview.check_readers(lambda *a: 1 / 0) and "raised ZeroDivisionError" in overview.check_readers(
        lambda *a: 1 / 0).message


def test_the_paths_are_per_student_and_the_names_never_repeat_on_a_path(monkeypatch):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": "s1", "record": None})
    first = overview.path_cases()
    assert all(len(set(path)) == len(path) for _, path, _, _ in first)
    assert [case for case, *_ in first] == [case for case, *_ in overview.PATHS]
    session._state["student"] = "s2"
    assert overview.path_cases() != first
