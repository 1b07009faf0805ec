"""The demo's cases: every tool of this installation that runs on the local kernel, each with
its scenarios, and the selection of some of them by tool or scenario name.

A case has a ``tool``, a ``marker`` (the topology its namespaces and children belong to:
``lab down MARKER`` removes a killed run's leftovers), ``scenarios()`` (each with a ``name``
and a ``summary``) and ``run(names, progress)``, which builds what the scenarios need, runs
them and returns one verdict per scenario, removing everything on every way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from . import build, runner, scenario
from .errors import DeclarationError
from .monitor import ToolMonitor, available
from .verdict import Verdict
from .workcase import Progress


class Case(Protocol):
    tool: str
    marker: str

    def scenarios(self) -> Sequence[Any]:
        """The scenarios, each with ``name`` and ``summary``."""

    def run(self, names: Sequence[str], progress: Progress) -> list[Verdict]:
        """The scenarios named (all when none are), judged."""


@dataclass(frozen=True)
class DropsCase:
    """dropmon under the drop scenarios (``lab/scenarios/drops.toml``) in their topology:
    one monitor for all of them, its events attributed to scenarios by namespace and time."""

    declared: scenario.ScenarioSet
    tool = "dropmon"

    @property
    def marker(self) -> str:
        return self.declared.topology.name

    def scenarios(self) -> tuple[scenario.Scenario, ...]:
        return self.declared.scenarios

    def run(self, names: Sequence[str], progress: Progress) -> list[Verdict]:
        chosen = self.declared.select(list(names))
        # --vlan: the vlan-no-device scenario's tag is gone from the skb by the time of the drop
        with build.built(chosen.topology), ToolMonitor(self.tool, ("--vlan",), self.marker) as monitor:
            verdicts = runner.run(chosen, monitor, lambda _, s, v: progress(s, v))
        problems = []
        if monitor.returncode != 0:
            problems.append(f"the monitor's exit status was {monitor.returncode}")
        if monitor.lost:
            problems.append(f"the monitor reported {monitor.lost} lost events: counts may be short")
        if monitor.bad_lines:
            problems.append(f"the monitor printed {len(monitor.bad_lines)} lines that are not JSON "
                            f"objects, e.g. {monitor.bad_lines[0]!r}")
        return [v.with_problems(problems) for v in verdicts]


def all_cases() -> list[Case]:
    """Every case whose tool this installation has, in demo order."""
    from .datapathcases import CASES as DATAPATH_CASES
    from .defragcases import CASES as DEFRAG_CASES
    from .proccases import CASES as PROCESS_CASES
    from .sockcases import CASES as SOCKET_CASES
    from .xdpcases import CASES as XDP_CASES
    from .netmoncases import NetmonCase, load as load_netmon

    cases: list[Case] = [DropsCase(scenario.load("drops")), NetmonCase(load_netmon()), *SOCKET_CASES,
                         *PROCESS_CASES, *XDP_CASES, *DATAPATH_CASES, *DEFRAG_CASES]
    return [c for c in cases if available(c.tool)]


def select(cases: Sequence[Case], names: Sequence[str]) -> list[tuple[Case, list[str]]]:
    """The cases to run, each with the scenario names chosen in it ([]: all of them);
    *names* are tools or scenarios (none: everything)."""
    if not names:
        return [(c, []) for c in cases]
    known = {s.name: c.tool for c in cases for s in c.scenarios()}
    tools = {c.tool for c in cases}
    for name in names:
        if name not in known and name not in tools:
            raise DeclarationError(f"no tool or scenario {name!r} (tools: {', '.join(c.tool for c in cases)}; "
                                   "scenarios: 'pybpfasm lab list')")
    chosen = []
    for c in cases:
        if c.tool in names:
            chosen.append((c, []))
        elif mine := [s.name for s in c.scenarios() if s.name in names]:
            chosen.append((c, mine))
    return chosen
