"""A tool's demo case on scripted workloads: per scenario, the workload is started (waiting),
the tool is started with a filter for it, the workload makes its calls, the tool is stopped
with SIGINT (streaming tools print what they read, at-exit tools their summary) and what it
printed is judged against what the workload is known to do.

A scenario may also run decoys: workloads the tool's filter must leave out (the same process
name in another namespace, for a pid filter). Every case of this kind runs in the ``demo``
topology (namespaces ``box`` and ``twin``, only loopback up in each), and
its workloads and tools are the lab's children marked ``demo``: ``lab down demo`` removes
what a killed run left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from . import build, children, topology
from .errors import LabError
from .monitor import ToolMonitor
from .scenario import Expectation
from .verdict import Verdict, judge

#: the topology every workload case runs in
TOPOLOGY = topology.parse({"name": "demo", "description": "the tool demo's namespaces: only loopback up",
                           "namespaces": {"box": {}, "twin": {}}}, "the tool demo")
NETNS, TWIN_NETNS = TOPOLOGY.namespaces["box"].full, TOPOLOGY.namespaces["twin"].full
#: the scratch directories' names: this prefix, the demo's pid, a dash and a random part
SCRATCH = "pbl-demo-"


class Workload(Protocol):
    """A scripted workload, started and waiting for :meth:`run`."""

    pid: int
    proc: subprocess.Popen

    def run(self) -> Any:
        """Make the calls; returns what the workload reports."""


@dataclass(frozen=True)
class Setting:
    """What a scenario's workload runs with: a unique process name, the demo's namespace (and
    another for a decoy) and an empty directory of its own."""

    comm: str
    netns: str
    twin_netns: str
    folder: str

    @staticmethod
    def spawn(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start a workload as the lab's child (it dies with the demo)."""
        return children.popen(argv, TOPOLOGY.name, **kwargs)


@dataclass(frozen=True)
class WorkloadScenario:
    name: str
    summary: str
    start: Callable[[Setting], Workload]                # the workload, started and waiting
    args: Callable[[Setting, Workload], list[str]]      # the tool's arguments (its filter) for it
    expect: Callable[[Setting, Workload], list[Expectation]]
    #: the tool's JSON objects as the events judged (default: as printed, ``time`` left out)
    events: Callable[[list[dict[str, Any]]], list[Mapping[str, Any]]] = lambda objs: list(objs)
    #: how many objects the tool must print (one summary for at-exit tools), None: any number
    objects: Optional[int] = None
    #: workloads the tool must not report, started (waiting) and run before the scenario's own
    decoys: Callable[[Setting], list[Workload]] = lambda setting: []


#: called before each scenario (verdict None) and after it with its verdict
Progress = Callable[[Any, Optional[Verdict]], None]


@dataclass(frozen=True)
class WorkloadCase:
    tool: str
    all: tuple[WorkloadScenario, ...]
    marker = TOPOLOGY.name

    def scenarios(self) -> tuple[WorkloadScenario, ...]:
        return self.all

    def run(self, names: Sequence[str], progress: Progress) -> list[Verdict]:
        """The scenarios named (all when none are), in order, in the demo topology."""
        chosen = [s for s in self.all if not names or s.name in names]
        verdicts = []
        prefix = f"{SCRATCH}{os.getpid()}-"
        with build.built(TOPOLOGY), tempfile.TemporaryDirectory(prefix=prefix) as scratch:
            for index, scenario in enumerate(chosen):
                progress(scenario, None)
                folder = os.path.join(os.path.realpath(scratch), str(index))
                os.mkdir(folder)
                comm = f"pbl-{self.tool[:6]}{os.getpid() % 1000}{index}"[:15]
                verdict = run_one(self.tool, scenario, Setting(comm, NETNS, TWIN_NETNS, folder))
                verdicts.append(verdict)
                progress(scenario, verdict)
        return verdicts


def run_one(tool: str, scenario: WorkloadScenario, setting: Setting) -> Verdict:
    """One scenario: the workload under ``pybpfasm TOOL --json ARGS``, judged.  A workload
    or a tool that fails is that scenario's mismatch, with the reason."""
    started: list[Workload] = []
    try:
        started += scenario.decoys(setting)
        work = scenario.start(setting)
        started.append(work)
        monitor = ToolMonitor(tool, scenario.args(setting, work), TOPOLOGY.name)
        with monitor:
            for workload in started:
                workload.run()
    except (RuntimeError, LabError) as err:
        return judge(scenario.name, [], [], [str(err)])
    finally:
        for workload in started:
            if workload.proc.poll() is None:
                workload.proc.kill()
                workload.proc.wait()
    objects = [{k: v for k, v in obj.items() if k != "time"} for obj in monitor.events()]
    problems = []
    if monitor.returncode != 0:
        last = monitor.stderr[-1] if monitor.stderr else ""
        problems.append(f"the tool's exit status was {monitor.returncode}: {last}")
    if monitor.lost:
        problems.append(f"the tool lost {monitor.lost} events")
    if monitor.bad_lines:
        problems.append(f"{len(monitor.bad_lines)} lines that are not JSON objects, e.g. {monitor.bad_lines[0]!r}")
    if scenario.objects is not None and len(objects) != scenario.objects:
        problems.append(f"{len(objects)} JSON objects printed, not {scenario.objects}")
    try:
        events = scenario.events(objects)
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # not the tool's JSON contract
        events, problems = [], [*problems, f"the tool's JSON objects are not what it promises: {err!r}"]
    return judge(scenario.name, scenario.expect(setting, work), events, problems)


def remove_stale_scratch() -> list[str]:
    """Remove the scratch directories of demos that died without cleaning up (SIGKILL);
    returns their paths."""
    base = tempfile.gettempdir()
    removed = []
    for entry in sorted(os.listdir(base)):
        pid = entry[len(SCRATCH):].partition("-")[0]
        if entry.startswith(SCRATCH) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(base, entry), ignore_errors=True)
            removed.append(os.path.join(base, entry))
    return removed
