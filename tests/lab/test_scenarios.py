"""Every scenario causes exactly the declared drops, per (namespace, reason), and nothing else
in the lab, as counted by the eDSL oracle (independent of the drop monitor)."""

from __future__ import annotations

from typing import Iterator

import pytest

from pybpfasm.lab.netns import runner, scenario

from .oracle import ReasonCounter

NAMES = [s.name for s in scenario.load("drops").scenarios]


@pytest.fixture(scope="module")
def oracle(drops_lab) -> Iterator[ReasonCounter]:
    with ReasonCounter(runner.lab_inodes(drops_lab).values()) as counter:
        yield counter


@pytest.mark.parametrize("name", NAMES)
def test_scenario_drops_exactly_what_it_declares(drops_lab, oracle, name):
    (verdict,) = runner.run(drops_lab.select([name]), oracle)
    observed = [(e.describe(), seen) for e, seen in verdict.expected]
    assert verdict.ok, f"observed {observed}, unexpected {list(verdict.unexpected)}"
    assert verdict.observed == drops_lab.select([name]).scenarios[0].total > 0
