"""The stack registry (e2ee_lab.call.stacks): discovery, selection, run_call and e2ee-lab call routing.

The stacks registered here in tests are small recording runners (no call is run): what is under
test is which stack the face picks and what it passes on. The real stacks' calls are tested in
test_call.py, test_webrtc.py and test_browser.py through the same face.
"""

from __future__ import annotations

import argparse

import pytest

from e2ee_lab.call import stacks
from e2ee_lab.call.stacks import Stack, add_call_arguments, register, registered, run_call, select


class Recorder:
    """A stack's ``run`` that records its arguments and returns a result-shaped object."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args, **options):
        self.calls.append((args, options))
        return self


@pytest.fixture
def registry(monkeypatch):
    """The real registry (discovered), restored after the test."""
    registered()
    monkeypatch.setattr(stacks, "_STACKS", dict(stacks._STACKS))
    return stacks._STACKS


def test_discovery_finds_every_stack_module():
    found = registered()
    assert {"lab", "webrtc", "browser", "janus"} <= set(found)
    assert found["lab"].option is None and found["webrtc"].option is None
    assert found["browser"].option == "browser_participants" and found["janus"].option == "sfu"
    assert found["native"].option == "native_participants"
    assert found["lab"].run.__module__ == "e2ee_lab.call.stack"


def test_select_by_name_then_by_a_set_option(registry):
    assert select("lab", {}).name == "lab"
    assert select("webrtc", {"capture": "off"}).name == "webrtc"
    assert select("webrtc", {"browser_participants": 1}).name == "browser"
    assert select("lab", {"browser_participants": 1}).name == "browser"  # which refuses it: test_browser
    with pytest.raises(ValueError, match="unknown stack 'quic'; expected one of lab, webrtc"):
        select("quic", {})


def test_two_option_stacks_at_once_are_refused(registry):
    with pytest.raises(ValueError, match="browser_participants and native_participants cannot be combined"):
        select("webrtc", {"browser_participants": 1, "native_participants": 1})


def test_a_name_or_an_option_is_registered_once(registry):
    with pytest.raises(ValueError, match="named 'lab' is already registered"):
        register(Stack("lab", run=Recorder(), help="again"))
    with pytest.raises(ValueError, match="selected by 'browser_participants'"):
        register(Stack("chrome", run=Recorder(), help="again", option="browser_participants"))


def test_run_call_passes_the_given_options_and_drops_unset_selectors(registry):
    lab, webrtc = Recorder(), Recorder()
    registry["lab"] = Stack("lab", run=lab, help="recording")
    registry["webrtc"] = Stack("webrtc", run=webrtc, help="recording")
    assert run_call("e2ee", 2, 1.0, browser_participants=0, garbage=3.0) is lab
    assert lab.calls == [(("lab", "e2ee", 2, 1.0, 0, None, None), {"garbage": 3.0})]
    run_call("dtls-srtp", 3, 2.0, 7, "ci", "out", stack="webrtc", capture="off")
    assert webrtc.calls == [(("webrtc", "dtls-srtp", 3, 2.0, 7, "ci", "out"), {"capture": "off"})]


def test_a_keyword_a_stack_does_not_take_is_refused_before_it_runs(registry):
    with pytest.raises(ValueError, match="the webrtc stack does not take mcu"):
        run_call("e2ee", 2, 1.0, stack="webrtc", mcu="any")
    with pytest.raises(ValueError, match="the browser stack does not take rtp_sframe"):
        run_call("e2ee", 2, 1.0, stack="webrtc", browser_participants=1, rtp_sframe="per-frame")
    with pytest.raises(ValueError, match="the lab stack does not take mcu, rpc"):
        run_call("e2ee", 2, 1.0, mcu="any", rpc=1)
    with pytest.raises(ValueError, match="the native stack does not take mcu"):
        run_call("e2ee", 2, 1.0, mcu="any", native_participants=1)
    recorder = Recorder()
    registry["lab"] = Stack("lab", run=recorder, help="recording", accepts=registered()["lab"].accepts)
    run_call("e2ee", 2, 1.0, garbage=1.0, sender_options=None)
    assert recorder.calls[0][1] == {"garbage": 1.0, "sender_options": None}


def test_a_new_stack_registers_itself_and_its_cli_option(registry, tmp_path, capsys):
    """What a new stack module does (an MCU's stack.py, say): register, add an option; no edit in call/."""
    summary = {"mode": "e2ee", "participant_count": 2, "seconds": 1.0, "size": "ci", "srtp_profile": "x",
               "participants": [], "sfu": {"packets_in": 0, "packets_forwarded": 0, "video_frames_decodable": 0,
                                           "video_frames_seen": 0, "audio_frames_intelligible": 0,
                                           "audio_frames_seen": 0, "dropped": {}}}

    class Result:
        def __init__(self, *args, **options):
            self.args, self.options, self.summary, self.capture = args, options, summary, None

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--mcu", choices=("example",), default=None, help="the MCU")

    register(Stack("mcu", run=Result, help="the call through an MCU", option="mcu",
                   add_arguments=add_arguments, arguments={"mcu": "mcu"}))
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    assert parser.parse_args([]).mcu is None
    args = parser.parse_args(["--mcu", "example", "--participants", "2", "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert "mode e2ee, 2 participants" in capsys.readouterr().out
    assert isinstance(select("lab", {"mcu": "example"}).run("lab", "e2ee", 2, 1.0, 0, None, None), Result)
    assert run_call("e2ee", 2, stack="lab", mcu="example").options == {"mcu": "example"}


def test_a_stack_error_is_one_line_and_exit_2(registry, tmp_path, capsys):
    class NoMCU(Exception):
        pass

    def fail(*args, **options):
        raise NoMCU("the MCU is not installed")

    register(Stack("mcu", run=fail, help="the call through an MCU", errors=(NoMCU,)))
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--stack", "mcu", "--out", str(tmp_path)])
    assert args.func(args) == 2
    assert capsys.readouterr().err == "call: the MCU is not installed\n"
