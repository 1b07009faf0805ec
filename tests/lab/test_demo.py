"""End to end, every tool case of the demo but dropmon's (tests/lab/test_dropmon.py): each
scenario's tool output matches its expectations exactly, counts included; a wrong expectation
is a mismatch; the demo prints expected versus observed per tool and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from pybpfasm.lab.netns import build, cases, children, workcase
from pybpfasm.lab.netns.demo import demo
from pybpfasm.lab.netns.errors import DeclarationError
from pybpfasm.lab.netns.scenario import Expectation
from pybpfasm.lab.netns.verdict import expand

CASES = [c for c in cases.all_cases() if isinstance(c, workcase.WorkloadCase)]
SCENARIOS = [(c, s.name) for c in CASES for s in c.scenarios()]


def _no_progress(scenario: object, verdict: object) -> None:
    """A progress callback that shows nothing."""


def _nothing_left() -> None:
    assert build.namespaces_up(workcase.TOPOLOGY.prefix) == []
    assert children.leftovers(workcase.TOPOLOGY.name) == []


@pytest.mark.parametrize("case,name", SCENARIOS, ids=[name for _, name in SCENARIOS])
def test_the_tool_prints_exactly_the_expected_events(privileged, case, name):
    (verdict,) = case.run([name], _no_progress)
    observed = [(e.describe(), seen) for e, seen in verdict.expected]
    assert verdict.ok, f"observed {observed}, unexpected {list(verdict.unexpected)}, {verdict.problems}"
    assert sum(seen for _, seen in verdict.expected) == sum(e.count for e, _ in verdict.expected) > 0
    _nothing_left()


def test_the_demo_covers_every_tool_that_runs_here():
    from pybpfasm.tools import TOOLS, unavailable

    assert sorted(c.tool for c in cases.all_cases()) == sorted(t for t in TOOLS if unavailable(t) is None)


def test_a_wrong_count_is_a_mismatch(privileged):
    """soconnect's scenario expecting one connect too many, and one unexpected: not ok."""
    (case,) = [c for c in CASES if c.tool == "soconnect"]
    real = case.scenarios()[0]

    def off(setting, work):
        first, *rest = real.expect(setting, work)
        return [Expectation(first.count + 1, first.fields), *rest[1:]]

    wrong = workcase.WorkloadScenario(real.name, real.summary, real.start, real.args, off)
    (verdict,) = workcase.WorkloadCase("soconnect", (wrong,)).run([], _no_progress)
    assert not verdict.ok
    assert verdict.expected[0][1] == 1 and len(verdict.unexpected) == 1
    _nothing_left()


def test_the_cli_prints_expected_versus_observed_per_tool(privileged):
    proc = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "lab", "demo", "sofamily", "execsnoop-execs"],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout
    lines = proc.stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("TOOL "))):]
    assert table[1].split()[:5] == ["sofamily", "sofamily-families", "2", "2", "ok"]
    tools = [line.split()[0] for line in table[1:] if line and not line.startswith(" ")]
    assert tools[:2] == ["sofamily", "execsnoop"]
    assert "MISMATCH" not in proc.stdout
    assert lines[-1].startswith("2/2 scenarios matched exactly in ")
    _nothing_left()


def test_interrupted_demo_leaves_nothing(privileged):
    demo_ = subprocess.Popen([sys.executable, "-m", "pybpfasm.cli", "lab", "demo", "soconnect", "sockstat"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(_is_tool(pid) for pid in children.leftovers(workcase.TOPOLOGY.name)):
        assert time.monotonic() < deadline and demo_.poll() is None, "the demo never started a tool"
        time.sleep(0.02)
    demo_.send_signal(signal.SIGINT)
    _, err = demo_.communicate(timeout=60)
    assert demo_.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 5
    while children.leftovers(workcase.TOPOLOGY.name) and time.monotonic() < deadline:
        time.sleep(0.05)
    _nothing_left()


def _is_tool(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"\0pybpfasm.cli\0" in f.read()
    except OSError:
        return False


def test_names_select_tools_and_scenarios():
    everything = cases.all_cases()
    chosen = cases.select(everything, ["soconnect", "udp4-closed-port"])
    assert [(c.tool, names) for c, names in chosen] == [("dropmon", ["udp4-closed-port"]), ("soconnect", [])]
    assert len(cases.select(everything, [])) == len(everything)
    with pytest.raises(DeclarationError, match="no tool or scenario 'nope'"):
        cases.select(everything, ["sockstat", "nope"])


def test_nothing_chosen_is_an_error():
    from pybpfasm.lab.netns.errors import LabError

    with pytest.raises(LabError, match="none of the lab's tools"):
        demo([])


def test_counted_rows_become_events():
    assert expand([{"a": 1, "count": 2}, {"a": 2, "count": 0}]) == [{"a": 1}, {"a": 1}]
    with pytest.raises(ValueError, match="a count of -1"):
        expand([{"a": 1, "count": -1}])


def test_every_case_runs_under_a_unique_name():
    names = [s.name for c in cases.all_cases() for s in c.scenarios()]
    assert len(names) == len(set(names))
    assert not set(names) & {c.tool for c in cases.all_cases()}
    assert os.path.basename(workcase.NETNS) == "pbl-demo-box"


def test_json_of_another_shape_is_a_mismatch_not_a_traceback(privileged):
    """sockstat's objects read as if they were sofamily's summaries."""
    (case,) = [c for c in CASES if c.tool == "sockstat"]
    real = case.scenarios()[0]
    wrong = workcase.WorkloadScenario(real.name, real.summary, real.start, real.args, real.expect,
                                      lambda objects: [o["accept"] for o in objects])
    (verdict,) = workcase.WorkloadCase("sockstat", (wrong,)).run([], _no_progress)
    assert not verdict.ok and "not what it promises: KeyError('accept')" in verdict.problems[0]
    _nothing_left()


def test_sigkilled_demo_leaves_nothing_after_down(privileged):
    """The tool and the workloads die with the demo (PR_SET_PDEATHSIG); 'lab down demo'
    removes its namespaces and its scratch directory."""
    demo_ = subprocess.Popen([sys.executable, "-m", "pybpfasm.cli", "lab", "demo", "opensnoop-opens"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(_is_tool(pid) for pid in children.leftovers(workcase.TOPOLOGY.name)):
        assert time.monotonic() < deadline and demo_.poll() is None, "the demo never started a tool"
        time.sleep(0.02)
    scratch = [e for e in os.listdir(tempfile.gettempdir()) if e.startswith(f"{workcase.SCRATCH}{demo_.pid}-")]
    assert len(scratch) == 1
    demo_.kill()
    demo_.wait()
    deadline = time.monotonic() + 5
    while children.leftovers(workcase.TOPOLOGY.name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children.leftovers(workcase.TOPOLOGY.name) == [], "a child outlived the demo"
    done = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "lab", "down", "demo"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{tempfile.gettempdir()}/{scratch[0]}" in done.stdout and "pbl-demo-box" in done.stdout
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), scratch[0]))
    _nothing_left()
