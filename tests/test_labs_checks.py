"""The checks of every lab: never raise, exact options, per-student parameters, sealed answers.

Every ``check_*`` function of ``e2ee_lab.labs`` is found programmatically and run under hypothesis
with arbitrary answers (and the master's answer with its leaves replaced), next to the real objects
of the lab it belongs to (real calls at ci size, the recorded captures, a real attack matrix, a real
aiortc call, lab 10's recorded tables): it must return a Feedback, and the check itself must not
have failed (``Feedback.error`` empty). With junk in place of the lab's objects it must still
return a Feedback.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import os
import pkgutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import e2ee_lab.labs
from e2ee_lab.labs import Feedback, Probed, check, is_check, session
from e2ee_lab.labs.answers import (Choices, Opaque, Sealed, canonical, from_plain, parse_letter, plain_copy,
                                   seal, to_plain, unseal)
from e2ee_lab.labs.instructor import leaks

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks" / "solutions"
NOT_LABS = {"answers", "assign", "session"}


def lab_modules() -> list:
    return [importlib.import_module(i.name) for i in pkgutil.iter_modules(e2ee_lab.labs.__path__, "e2ee_lab.labs.")
            if i.name.rsplit(".", 1)[1] not in NOT_LABS and not i.ispkg]


def check_functions() -> list[tuple[str, object]]:
    return [(f"{m.__name__.rsplit('.', 1)[1]}.{name}", f) for m in lab_modules()
            for name, f in vars(m).items() if name.startswith("check_") and inspect.isfunction(f)
            and f.__module__ == m.__name__]


CHECKS = check_functions()


def test_every_check_is_found_and_guarded():
    assert len(CHECKS) >= 38, [n for n, _ in CHECKS]
    assert [n for n, f in CHECKS if not is_check(f)] == []


# --- the lab's own objects, real --------------------------------------------------------------------


_SESSION: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def _session_matrix(attack_matrix):
    """The session's attack matrix (conftest.py: every attack, both modes), so this file runs no matrix
    of its own."""
    _SESSION["matrix"] = attack_matrix


@functools.cache
def contexts() -> dict[str, object]:
    """Real objects per check parameter name (module.param), made once for the whole file."""
    os.environ.setdefault("E2EE_LAB_SIZE", "ci")
    from e2ee_lab.analysis.views import recording
    from e2ee_lab.attacks.runner import run_matrix
    from e2ee_lab.call import run_call
    from e2ee_lab.labs import browser, capture, malicious, sframe, webrtc
    from e2ee_lab.webrtc import run_webrtc_call

    plain, e2ee = run_call("dtls-srtp", 3, 1.0, size="ci"), run_call("e2ee", 3, 1.0, size="ci")
    matrix = _SESSION.get("matrix") or run_matrix(list(malicious.PREDICT) + ["key-substitution"], modes=("e2ee",))
    rtc = run_webrtc_call("e2ee", 2, 1.0, size="ci")
    old = os.environ.get("E2EE_LAB_CHROMIUM")
    os.environ["E2EE_LAB_CHROMIUM"] = "/nonexistent"  # lab 10's recorded tables, no browser here
    try:
        calls = browser.browser_calls()
        views, loss = browser.views_table(calls), browser.loss_comparison()
    finally:
        os.environ.pop("E2EE_LAB_CHROMIUM") if old is None else os.environ.__setitem__("E2EE_LAB_CHROMIUM", old)
    from e2ee_lab.labs import janus, leakage

    return {
        "janus.call": janus.RecordedCall.load("e2ee"),
        "janus.calls": {mode: janus.RecordedCall.load(mode) for mode in janus.MODES},
        "overview.plain": plain, "overview.calls": {"dtls-srtp": plain, "e2ee": e2ee}, "overview.publisher": None,
        "call.plain": plain, "call.e2ee": e2ee, "call.publisher": None,
        "capture.v": capture.views(recording("dtls-srtp")), "capture.publisher": None, "capture.n": 1,
        "capture.payloads": capture.udp_payloads(recording("dtls-srtp")),
        "sframe.header": sframe.task1_header(),
        "malicious.table": matrix.table, "malicious.headers": malicious.replayed_headers(matrix),
        "leakage.result": e2ee, "leakage.ssrc": leakage.task2_ssrc(e2ee),
        "overhead.df": None,
        "webrtc.result": rtc,
        "browser.views": views, "browser.loss": loss,
    }


def _parameters(name: str, func) -> tuple[int, list[str]]:
    spec = e2ee_lab.labs.check_spec(func)
    params = list(inspect.signature(func).parameters)
    module = name.split(".")[0]
    return spec["answers"], [f"{module}.{p}" for p in params[spec["answers"]:]]


def test_every_check_parameter_has_a_real_object():
    missing = {p for name, f in CHECKS for p in _parameters(name, f)[1] if p not in contexts()}
    assert not missing, f"add real objects for {sorted(missing)} to contexts()"


# --- answers: arbitrary, and the master's answers with their leaves replaced ---------------------------

class Hostile:
    """Equal to everything, and raises from every other protocol a check might use."""

    def _boom(self, *args, **kwargs):
        raise RuntimeError("hostile")

    __iter__ = __len__ = __str__ = __format__ = __bool__ = __getitem__ = _boom
    __lt__ = __float__ = __int__ = __index__ = __call__ = _boom

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:  # hypothesis prints examples with repr
        return "Hostile()"


scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**400), max_value=10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40) | st.binary(max_size=40)
           | st.sampled_from(["A", "b", " (c) ", "d.", "Because ... no, B", "never", "auth", "server", "alice", "sfu"])
           | st.just(Hostile()))
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
                        | st.dictionaries(st.text(max_size=20) | st.integers(), inner, max_size=5)
                        | st.frozensets(st.integers() | st.text(max_size=10), max_size=5), max_leaves=12)
functions = st.sampled_from([lambda *a: True, lambda *a: None, lambda *a: 1 / 0, lambda *a: Hostile(), lambda *a: "yes",
                             lambda *a: [1], len])


def _shaped(value):
    """Strategy: ``value``'s shape (dict keys, tuple length, set) with arbitrary leaves."""
    if isinstance(value, dict):
        return st.fixed_dictionaries({k: _shaped(v) for k, v in value.items()})
    if isinstance(value, tuple):
        return st.tuples(*(_shaped(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return st.sets(st.integers(0, 400) | st.text(max_size=8), max_size=6)
    return anything


@functools.cache
def master_shapes() -> dict[str, list]:
    """Per check name, the master answers of its task (values of the answer cells)."""
    from e2ee_lab.labs.instructor.grade import plan_lab

    out: dict[str, list] = {}
    found = leaks.master_answers(SOLUTIONS)
    for master in sorted(SOLUTIONS.glob("[0-9]*.ipynb")):
        for task in plan_lab(master).tasks:
            values = [a.value for a in found if a.lab == master.name[:2] and a.task == task.task and a.value is not None]
            out[task.function.split(".")[-1]] = values
    return out


#: Shapes of answers that the masters compute from a run (no literal to take the shape from).
RUN_SHAPES = {
    "call.check_prediction": {"dtls-srtp video": "every frame", "dtls-srtp audio": "speech",
                              "e2ee video": "no frame", "e2ee audio": "noise"},
    "browser.check_prediction": {"SFU, e2ee": "nothing", "SFU, dtls-srtp": "the picture",
                                 "Alice, e2ee": "the picture", "Alice, dtls-srtp": "the picture"},
    "janus.check_recording_prediction": {"e2ee: janus-pp-rec writes the video file": "yes",
                                         "e2ee: the video file shows the picture": "no",
                                         "e2ee: the audio file plays": "noise",
                                         "dtls-srtp: the video file shows the picture": "yes"},
}


def _answers(count: int, name: str):
    shapes = [RUN_SHAPES[name]] if name in RUN_SHAPES else master_shapes().get(name.split(".")[1], [])
    first = st.one_of(anything, functions, *[_shaped(v) for v in shapes[:1]])
    return st.tuples(first, *[anything] * (count - 1))


@pytest.mark.parametrize("name,func", CHECKS, ids=[n for n, _ in CHECKS])
@settings(max_examples=25)
@given(data=st.data())
def test_a_check_never_raises_and_never_fails_inside(name, func, data):
    count, params = _parameters(name, func)
    answers = data.draw(_answers(count, name))
    feedback = func(*answers, *[contexts()[p] for p in params])
    assert isinstance(feedback, Feedback)
    assert feedback.error == "", f"{name}{answers!r}: {feedback.error}"
    assert isinstance(feedback.message, str) and feedback.message


@pytest.mark.parametrize("name,func", CHECKS, ids=[n for n, _ in CHECKS])
def test_a_check_with_junk_for_the_labs_objects_still_answers(name, func):
    count, params = _parameters(name, func)
    for junk in (None, 42, "x", Hostile()):
        assert isinstance(func(*[None] * count, *[junk] * len(params)), Feedback)
        assert isinstance(func(*["A"] * count, *[junk] * len(params)), Feedback)


# --- the bugs issue 14 lists -----------------------------------------------------------------------------


def test_the_listed_check_bugs_are_gone():
    from e2ee_lab.labs import capture, keys

    assert not keys.check_grace_losses(12.7).ok  # int(12.7) == 12 passed before
    twelve = keys.check_grace_losses("twelve")
    assert not twelve.ok and not twelve.error
    assert keys.check_grace_losses(12.0).ok == keys.check_grace_losses(12).ok
    five = keys.check_leaver_frames(5)
    assert not five.ok and not five.error
    message = str(capture.check_badge_packet(1, contexts()["capture.v"]))
    assert message.count("not yet") == 1, message


def test_a_rigged_answer_arrives_opaque_and_passes_nothing():
    from e2ee_lab.labs import pitfalls, sframe

    class Always(tuple):
        def __eq__(self, other):
            return True

        __hash__ = tuple.__hash__

    class Big(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    assert plain_copy(Always((1, 2))) == (1, 2) and type(plain_copy(Always((1, 2)))) is tuple
    assert type(plain_copy(Big(3))) is int
    header = sframe.task1_header()
    assert not sframe.check_header_decoding(Always((1, 2)), header).ok
    assert not sframe.check_overhead(Big(3)).ok
    assert not pitfalls.check_expected_attempts(Big(3)).ok
    assert plain_copy(Hostile()) == Opaque("Hostile") or isinstance(plain_copy(Hostile()), Opaque)
    assert not sframe.check_overhead(Hostile()).ok


# --- plain data, canonical bytes, seals -------------------------------------------------------------------


@settings(max_examples=200)
@given(anything)
def test_plain_data_round_trips_through_json(value):
    import json

    data = to_plain(value)
    again = from_plain(json.loads(json.dumps(data)))
    assert canonical(again) == canonical(value) or any(isinstance(v, float) and math.isnan(v) for v in [value])


def test_canonical_bytes_tell_apart_what_answers_tell_apart():
    assert canonical({1, 2}) == canonical({2, 1})
    assert canonical({"a": 1, "b": 2}) == canonical({"b": 2, "a": 1})
    assert canonical(3) == canonical(3.0)
    assert canonical((1, 2)) != canonical((2, 1))
    assert canonical(True) != canonical(1)
    assert canonical("16") != canonical(16)
    assert canonical(b"x") != canonical("x")


def test_a_seal_opens_with_its_answer_only_and_hides_both():
    token = seal("99/T1", {"k": (10, 500)}, "well done")
    assert unseal("99/T1", token, {"k": (10, 500)}) == "well done"
    assert unseal("99/T1", token, {"k": (500, 10)}) is None
    assert unseal("99/T2", token, {"k": (10, 500)}) is None  # bound to its key
    assert unseal("99/T1", token[:-4] + "AAAA", {"k": (10, 500)}) is None
    assert "500" not in token and "well done" not in token
    assert seal("99/T1", 1, "m") == seal("99/T1", 1, "m")  # stable files, one message per (key, nonce)
    assert seal("99/T1", 1, "m") != seal("99/T1", 1, "n")


def test_shipped_seals_are_up_to_date_and_open_with_the_instructors_answers():
    from e2ee_lab.labs.instructor.__main__ import stale
    from e2ee_lab.labs.instructor.answers import caption_frames, sealed_answers
    from e2ee_lab.labs import pitfalls

    assert stale() == []
    for key, (answer, message) in sealed_answers().items():
        assert Sealed(key).opens(answer) == message, key
    assert caption_frames() == pitfalls.TASK1_FRAMES


def test_no_module_outside_the_instructor_package_imports_it():
    import ast

    offenders = []
    for path in (ROOT / "e2ee_lab").rglob("*.py"):
        if "instructor" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            module = getattr(node, "module", None) or ""
            if "instructor" in module or any("instructor" in n for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# --- multiple choice --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,letter", [("B", "B"), ("b", "B"), (" (b) ", "B"), ("b.", "B"), ("c)", "C"),
                                         ("Because ... no, B", None), ("B or C", None), ("BB", None), ("", None),
                                         ("option B", None), (2, None), (None, None)])
def test_an_option_is_exactly_one_letter(text, letter):
    assert parse_letter(text) == letter


def _questions() -> list[Choices]:
    return [v for m in lab_modules() for v in vars(m).values() if isinstance(v, Choices)]


def test_every_question_is_found_and_its_options_are_of_similar_length():
    questions = _questions()
    assert {q.key for q in questions} >= {"02/T2", "05/T2", "07/T4", "08/T2", "09/T1"}
    for q in questions:
        if q.key == "07/T4":
            continue  # a matching task: every option is the answer to one pitfall
        lengths = [len(c.text) for c in q.options.values()]
        assert max(lengths) / min(lengths) <= 1.3, (q.key, lengths)


def test_options_are_shuffled_per_student_and_stable_per_student(monkeypatch):
    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    orders = {}
    for student in ("", "s1", "s2", "s3", "s4"):
        monkeypatch.setenv(session.STUDENT_ENV, student)
        orders[student] = tuple(tuple(q.order()) for q in _questions())
        assert orders[student] == tuple(tuple(q.order()) for q in _questions())
    assert len(set(orders.values())) == len(orders)
    authored = tuple(tuple(q.options) for q in _questions())
    assert orders[""] != authored  # the shipped notebooks are shuffled too


def test_a_question_reads_the_answer_by_this_students_letters(monkeypatch):
    from e2ee_lab.labs import capture

    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    for student in ("s1", "s2"):
        monkeypatch.setenv(session.STUDENT_ENV, student)
        q = capture.ENTROPY_STATEMENTS
        right = q.letter_of("payload-only")
        assert capture.check_entropy_statement(right).ok
        assert capture.check_entropy_statement(right.lower()).ok
        assert not capture.check_entropy_statement(f"Because ... no, {right}").ok
        assert all(not capture.check_entropy_statement(x).ok for x in q if x != right)


# --- per-student parameters ---------------------------------------------------------------------------------


def test_parameters_are_per_student_per_lab_and_default_for_the_shipped_notebooks(monkeypatch):
    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    monkeypatch.delenv(session.STUDENT_ENV, raising=False)
    assert session.params("03").integer("kid", 0, 255, default=10) == 10
    monkeypatch.setenv(session.STUDENT_ENV, "s1234")
    a = [session.params("03").integer("kid", 0, 255, default=10) for _ in range(3)]
    assert len(set(a)) == 1
    values = {session.Params(f"s{i}", "03").integer("kid", 0, 255, 10) for i in range(50)}
    assert len(values) > 30
    assert session.Params("s1", "03").seed("call") != session.Params("s1", "07").seed("call")
    session.start("03", student="alice")  # the first cell's argument wins over the variable
    assert session.student_id() == "alice" and session.run_record()["student"] == "alice"
    session.start("03")
    assert session.student_id() == "s1234"


# --- how a build task is checked -------------------------------------------------------------------------


def test_a_build_check_judges_what_its_probe_recorded():
    calls = []

    def probe(func):
        calls.append(func)
        return {"out": func(3)}

    @check(probe=probe)
    def check_square(answer):
        if not isinstance(answer, Probed):
            return Feedback(False, "a function please")
        return Feedback(answer.outputs == {"out": 9}, "ok" if answer.outputs == {"out": 9} else "no")

    assert check_square(lambda x: x * x).ok and len(calls) == 1
    assert check_square(Probed({"out": 9})).ok and len(calls) == 1  # the grader's path: data, no function
    assert not check_square(Probed({"out": Hostile()})).ok
    assert not check_square(3).ok
    assert not check_square(lambda x: 1 / 0).ok and check_square(lambda x: 1 / 0).error  # the probe must catch
