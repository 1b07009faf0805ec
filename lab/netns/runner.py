"""Run scenarios one after another against an observer of drop events and judge each.

Events are attributed to a scenario by the namespace inode they carry (only the lab's count)
and by time: a scenario's window closes once the observer has reported at least the declared
number of lab events and then stayed quiet for :data:`QUIET` seconds, or at its deadline.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from . import build
from .scenario import Scenario, ScenarioSet
from .verdict import Verdict, judge, project

QUIET = 0.3           # seconds without a new lab event that end a scenario's window
DEADLINE = 3.0        # seconds after the settle time by which the declared drops must be in
POLL = 0.02


class Observer(Protocol):
    """What reports drop events: the drop monitor, or a test's oracle."""

    #: the event keys it reports; None: all of them
    keys: frozenset[str] | None

    def events(self) -> Sequence[Mapping[str, Any]]:
        """Every event so far, in order; later calls extend earlier answers."""


#: called before each scenario with (index, scenario) and after it with its verdict
Progress = Callable[[int, Scenario, Optional[Verdict]], None]


def lab_inodes(scenarios: ScenarioSet) -> dict[str, int]:
    """Local namespace name -> inode, for the topology that must be up."""
    return {ns.local: build.inode(ns.full) for ns in scenarios.topology.namespaces.values()}


def run(scenarios: ScenarioSet, observer: Observer, progress: Progress | None = None) -> list[Verdict]:
    """Send each scenario's traffic and judge the lab events that follow it."""
    inodes = lab_inodes(scenarios)
    ours = set(inodes.values())

    def lab_events() -> list[Mapping[str, Any]]:
        return [e for e in observer.events() if e.get("netns") in ours]

    verdicts = []
    _wait_quiet(lab_events)  # anything before the first scenario is nobody's
    for index, scenario in enumerate(scenarios.scenarios):
        if progress:
            progress(index, scenario, None)
        start = len(lab_events())
        scenario.sender.send()
        events = _collect(lab_events, start, scenario)
        expected = scenario.expectations(inodes)
        if observer.keys is not None:
            expected = project(expected, observer.keys)
        verdict = judge(scenario.name, expected, events)
        verdicts.append(verdict)
        if progress:
            progress(index, scenario, verdict)
    return verdicts


def _collect(lab_events: Callable[[], list], start: int, scenario: Scenario) -> list:
    """The lab events after ``start`` once the scenario's window has closed."""
    begin = time.monotonic()
    deadline = begin + scenario.settle + DEADLINE
    last_count, last_change = start, begin
    while True:
        now = time.monotonic()
        events = lab_events()
        if len(events) != last_count:
            last_count, last_change = len(events), now
        enough = len(events) - start >= scenario.total and now >= begin + scenario.settle
        if (enough and now - last_change >= QUIET) or now >= deadline:
            return events[start:]
        time.sleep(POLL)


def _wait_quiet(lab_events: Callable[[], list], limit: float = DEADLINE) -> None:
    count, since = len(lab_events()), time.monotonic()
    give_up = since + limit
    while time.monotonic() - since < QUIET and time.monotonic() < give_up:
        time.sleep(POLL)
        if len(lab_events()) != count:
            count, since = len(lab_events()), time.monotonic()
