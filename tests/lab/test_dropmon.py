"""End to end: for every scenario, ``pybpfasm dropmon --json`` prints exactly the declared
events (counts and every declared key: addresses, ports, IP ID, VLAN, ICMP type/code,
ifname, netns, reason) and nothing else in the lab's namespaces."""

from __future__ import annotations

from typing import Iterator

import pytest

from pybpfasm.lab.netns import runner, scenario
from pybpfasm.lab.netns.monitor import ToolMonitor, available

pytestmark = pytest.mark.skipif(not available("dropmon"), reason="no 'pybpfasm dropmon' in this tree")

NAMES = [s.name for s in scenario.load("drops").scenarios]


@pytest.fixture(scope="module")
def monitor(drops_lab) -> Iterator[ToolMonitor]:
    with ToolMonitor("dropmon", ("--vlan",), drops_lab.topology.name) as mon:  # vlan-no-device
        yield mon
    assert mon.bad_lines == []


@pytest.mark.parametrize("name", NAMES)
def test_monitor_prints_exactly_the_declared_events(drops_lab, monitor, name):
    (verdict,) = runner.run(drops_lab.select([name]), monitor)
    assert monitor.lost == 0
    observed = [(e.describe(), seen) for e, seen in verdict.expected]
    assert verdict.ok, f"observed {observed}, unexpected {list(verdict.unexpected)}"
