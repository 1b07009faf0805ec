"""CI's short OVS check (tests/vm/test_smoke.py boots 6.1 for it): the ``drop`` scenario
alone, with ovs-dropmon alone; tests/kernel/test_ovs_tools.py runs every scenario and tool."""

from __future__ import annotations

from .test_ovs_tools import START_TIMEOUT, pytestmark  # noqa: F401  (same skips)


def test_dropmon_counts_the_drop_flows_packets() -> None:
    from pybpfasm.lab.netns import monitor
    from pybpfasm.lab.vm import ovs_scenarios

    monitor.START_TIMEOUT = START_TIMEOUT
    (scenario,) = [s for s in ovs_scenarios.scenarios() if s.tag == "drop"]
    want = scenario.expected
    try:
        scenario.setup()
        with monitor.ToolMonitor("ovs-dropmon", ["--port", want.drop_port], "pov") as mon:
            scenario.send()
        flows = {ufid: n for _, n, ufid in scenario.dp.flows()}
        assert mon.returncode == 0, mon.stderr
        assert flows == want.flows
        assert len(mon.events()) == want.drops == flows[want.drop_ufid]
    finally:
        scenario.teardown()
