"""Notebook 00 (overview): the threat-model figure and data, the labs map, the task checks against real
calls, and the offline grader (:mod:`e2ee_lab.labs.grade`)."""

from __future__ import annotations

import nbformat
import pytest
from matplotlib.figure import Figure
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from e2ee_lab.analysis import threat_model
from e2ee_lab.call import run_call
from e2ee_lab.labs import grade, overview


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
    assert not receiver and str(receiver).startswith("not yet: bob never sees K₁")
    assert "set of names" in overview.check_leg_key("alice, sfu", plain).message
    assert "missing ['alice']" in overview.check_leg_key({"sfu"}, plain).message


def test_media_readers_check(calls):
    good = {"dtls-srtp": {"alice", "bob", "sfu"}, "e2ee": {"alice", "bob"}}
    assert overview.check_media_readers(good, calls).ok
    sfu_reads_e2ee = overview.check_media_readers({**good, "e2ee": {"alice", "bob", "sfu"}}, calls)
    assert not sfu_reads_e2ee and "decoded 0" in sfu_reads_e2ee.message
    sfu_missing = overview.check_media_readers({**good, "dtls-srtp": {"alice", "bob"}}, calls)
    assert not sfu_missing and "holds the leg key" in sfu_missing.message
    assert "missing ['bob']" in overview.check_media_readers({**good, "e2ee": {"alice"}}, calls).message
    assert "keys" in overview.check_media_readers({"e2ee": {"alice"}}, calls).message
    assert not overview.check_media_readers(None, calls)


def test_sfu_view_table_counts_what_the_sfu_decoded(calls):
    table = overview.sfu_view_table(calls)
    assert table.loc["dtls-srtp", "pictures the SFU decoded"] > 0
    assert table.loc["e2ee", "pictures the SFU decoded"] == 0
    relayed = table["key messages relayed (sealed)"]
    assert relayed["e2ee"] > 0 and relayed["dtls-srtp"] == 0


# --- grading -----------------------------------------------------------------------------------------


def _submission(path, header_answer, check="lab.check_header_decoding(answer_header)"):
    """A lab 03 submission with two tasks: Task 1 answered, Task 2 left as shipped."""
    cells = [
        new_markdown_cell("# Lab 03 — SFrame by hand"),
        new_code_cell("from e2ee_lab.labs import sframe as lab"),
        new_markdown_cell("## Tasks\n\n### Task 1 · Decode a header by hand"),
        new_code_cell(f"answer_header = {header_answer!r}"),
        new_code_cell(check),
        new_markdown_cell("### Task 2 · What does the receiver reject?"),
        new_code_cell("answer_tampering = None"),
        new_code_cell("lab.check_tampering(answer_tampering)"),
        new_code_cell("1 / 0"),
        new_code_cell("raise ValueError('meant to fail')", metadata={"tags": ["raises-exception"]}),
    ]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_grade_runs_a_submission_and_reads_each_task(tmp_path):
    good = grade.grade_notebook(_submission(tmp_path / "ann.ipynb", (10, 500)))
    assert good.lab == "03" and good.tasks == ("Task 1", "Task 2")
    assert good.status("Task 1") == "correct" and good.status("Task 2") == "not yet"
    assert good.edited_checks == () and good.errors == ("ZeroDivisionError: division by zero",)
    bad = grade.grade_notebook(_submission(tmp_path / "bo.ipynb", (500, 10)))
    assert bad.status("Task 1") == "not yet"
    table = grade.grade_table([good, bad])
    assert table.loc["ann.ipynb", "score"] == "1/2" and table.loc["bo.ipynb", "score"] == "0/2"


def test_grade_flags_an_edited_check_cell(tmp_path):
    path = _submission(tmp_path / "cy.ipynb", None, check='print("correct: trust me")  # check_header_decoding()')
    sub = grade.grade_notebook(path)
    assert sub.status("Task 1") == "correct"  # the faked output is read like any other ...
    assert len(sub.edited_checks) == 1  # ... but the cell is not the master's


def test_grade_command_without_execution_reads_saved_outputs(tmp_path, capsys):
    path = _submission(tmp_path / "dee.ipynb", (10, 500))
    assert grade.main([str(path), "--no-execute", "--csv", str(tmp_path / "g.csv")]) == 0
    out = capsys.readouterr().out
    assert "dee.ipynb" in out and "0/2" in out  # nothing ran, so no verdicts
    assert (tmp_path / "g.csv").read_text().startswith("notebook,lab,Task 1,Task 2,score")
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert grade.main([str(tmp_path / "broken.ipynb"), "--no-execute"]) == 1


def test_grade_table_orders_tasks_and_names_duplicates_by_path(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    subs = [grade.Submission(tmp_path / "a" / "x.ipynb", "03", (grade.Verdict("Task 1", True, "correct: ok"),),
                             ("Task 1",)),
            grade.Submission(tmp_path / "b" / "x.ipynb", "07", (grade.Verdict("Task 10", False, "not yet: no"),),
                             ("Task 2", "Task 10"))]
    table = grade.grade_table(subs)
    assert list(table.columns) == ["lab", "Task 1", "Task 2", "Task 10", "score", "checks edited", "errors"]
    assert list(table.index) == [str(tmp_path / "a" / "x.ipynb"), str(tmp_path / "b" / "x.ipynb")]
    assert list(table.iloc[1][["Task 1", "Task 2", "Task 10", "score"]]) == ["", grade.NO_VERDICT, "not yet", "0/2"]
