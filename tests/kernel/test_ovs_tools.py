"""The OVS tools against OVS's own counters, on every scenario of lab/vm/ovs_scenarios.py.

Runs in a VM lab guest, where the openvswitch module loads
(``pybpfasm lab vm run --kernel 6.1 -- python3 -m pytest tests/kernel/test_ovs_tools.py``;
tests/vm/test_ovs_tools.py boots 5.10, 6.1 and 6.12 for it).  Every scenario
is set up first, each on a datapath of its own; the tools start once, every
scenario sends its packets, the tools stop, and each test compares one
tool's view of one scenario with the counts the scenario declared and with
what OVS counted (``ovs-dpctl dump-flows`` per flow, ``ovs-dpctl show``'s
hit/missed/lost and the sink's transmit counter, over the send).

What the tools see that the counters do not, or the reverse:

* drops are counted by the kernel in no OVS counter; each dropped packet is
  one flow packet (``drop``, ``defer``, ``recur``: one drop a packet) or one
  lost upcall (``upcall``), and that is what the drop monitor must match;
* ``ovs-dpctl show``'s hits count each lookup, recirculations included
  (``ct`` looks up twice a packet), while ovslatency counts each
  ``ovs_vport_receive``: a recirculation is no new receive, but each internal
  port the ``recur`` chain enters is;
* the clone summary counts actions, OVS counts packets: a packet of ``out``
  is 3 OUTPUT actions and 3 packets on the sink.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.skipif(not Path("/sys/module/openvswitch").exists(),
                       reason="needs the openvswitch kernel module: runs in the VM lab "
                              "(tests/vm/test_ovs_tools.py)"),
    pytest.mark.skipif(shutil.which("ovs-dpctl") is None, reason="needs openvswitch-switch"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

#: seconds a tool may take to start in a TCG guest (Python, BTF and the build are slow there)
START_TIMEOUT = 240.0


@dataclass
class Run:
    scenarios: dict[str, Any]
    flows: dict[str, dict[str, int]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    sink: dict[str, int] = field(default_factory=dict)
    tools: dict[str, Any] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def _has_btf() -> bool:
    from pybpfasm.tools.common import ovs

    return ovs.module_btf() is not None


def _has_reasons() -> bool:
    from pybpfasm.tools.common import ovs

    return bool(ovs.drop_reason_names()) and ovs.subsystem() is not None


TOOLS = {
    "dropmon": ("ovs-dropmon", []),
    "filtered": ("ovs-dropmon", ["--src", "10.84.0.1", "--protocol", "icmp"]),
    "clone": ("ovs-clone-summary", ["-i", "3600"]),
    "latency": ("ovslatency", ["-t", "3600"]),
    "hist": ("ovslatency", ["-i", "3600", "--hist"]),
}


@pytest.fixture(scope="module")
def run():
    from pybpfasm.lab.netns import monitor
    from pybpfasm.lab.vm import ovs, ovs_scenarios
    from pybpfasm.tools import TOOLS as REGISTRY
    import importlib

    monitor.START_TIMEOUT = START_TIMEOUT
    scenarios = {s.tag: s for s in ovs_scenarios.scenarios()}
    result = Run(scenarios)
    filtered = ["--dp", "pov-defer"] if _has_btf() else ["--port", "povdefer1-br"]
    try:
        for s in scenarios.values():
            s.setup()
        for key, (name, args) in TOOLS.items():
            why = importlib.import_module(f"pybpfasm.tools.{REGISTRY[name].module}").tool.unavailable()
            if why is not None:
                result.unavailable[key] = why
                continue
            mon = monitor.ToolMonitor(name, args + (filtered if key == "filtered" else []), "pov")
            mon.start()
            result.tools[key] = mon
        before = {tag: (s.dp.stats(), _sent(s)) for tag, s in scenarios.items()}
        for s in scenarios.values():
            s.send()
        time.sleep(1)
        for mon in result.tools.values():
            mon.stop()
        for tag, s in scenarios.items():
            result.flows[tag] = {ufid: n for _, n, ufid in s.dp.flows()}
            result.stats[tag] = _delta(s.dp.stats(), before[tag][0])
            result.sink[tag] = _sent(s) - before[tag][1]
        _show(result)
        yield result
    finally:
        for mon in result.tools.values():
            mon.stop()
        for s in scenarios.values():
            s.teardown()


def _sent(s) -> int:
    """Packets sent into the scenario's sink namespace so far (0: it has none)."""
    from pybpfasm.lab.vm import ovs

    return ovs.tx_packets(s.port(2)) if s.ns(2) in s.netns else 0


def _delta(after, before):
    """The lookups of the send alone: setting a scenario up can cost some (recur's devices
    send 8 packets of their own as they come up, before any is traced or sent)."""
    return type(after)(after.hit - before.hit, after.missed - before.missed, after.lost - before.lost)


def _show(run: Run) -> None:
    """What was counted, for the log of a failing run (pytest shows it; ``-s`` prints it)."""
    print(json.dumps({"flows": run.flows, "stats": {t: list(v.__dict__.values()) for t, v in run.stats.items()},
                      "sink": run.sink, "unavailable": run.unavailable,
                      "tools": {k: m.events() for k, m in run.tools.items()},
                      "stderr": {k: m.stderr for k, m in run.tools.items()}}, default=str))


def _tool(run: Run, key: str):
    if key in run.unavailable:
        pytest.skip(f"{TOOLS[key][0]} cannot run here: {run.unavailable[key]}")
    mon = run.tools[key]
    assert mon.returncode == 0, mon.stderr
    assert mon.lost == 0 and mon.bad_lines == [], (mon.lost, mon.bad_lines)
    return mon


TAGS = ["out", "ct", "drop", "defer", "recur", "upcall"]


@pytest.mark.parametrize("tag", TAGS)
def test_ovs_counts_what_the_scenario_declared(run, tag):
    want = run.scenarios[tag].expected
    assert run.flows[tag] == want.flows
    assert run.stats[tag] == want.stats
    assert run.sink[tag] == want.sink


def _drops(run: Run, key: str, tag: str) -> list[dict[str, Any]]:
    s = run.scenarios[tag]
    events = _tool(run, key).events()
    if _has_btf():
        return [e for e in events if e["dp"] == s.dp_name]
    return [e for e in events if e["port"] == s.expected.drop_port]


@pytest.mark.parametrize("tag", TAGS)
def test_dropmon_counts_each_drop_with_its_reason_flow_and_packet(run, tag):
    s, want = run.scenarios[tag], run.scenarios[tag].expected
    drops = _drops(run, "dropmon", tag)
    assert len(drops) == want.drops
    if want.drop_ufid is not None:  # one drop a packet of the flow that dropped it
        assert len(drops) == run.flows[tag][want.drop_ufid]
    elif want.drops:  # no flow: the packets whose upcall was lost
        assert len(drops) == run.stats[tag].lost
    for ev in drops:
        if _has_reasons():
            assert ev["reason"] == want.drop_reason
        else:
            assert ev["location"].split("+")[0] == want.drop_function, ev
        assert ev["port"] == want.drop_port
        assert (ev["proto"], ev["src"], ev["dst"], ev["icmp_type"]) == (
            "icmp", f"{s.net}.1", f"{s.net}.2", 8)
        if _has_btf():
            assert ev["ufid"] == want.drop_ufid
            assert ev["in_port"] == s.dp.ports()[want.drop_port]


def test_dropmon_filters_in_the_kernel(run):
    drops = _tool(run, "filtered").events()
    defer = run.scenarios["defer"]
    assert len(drops) == defer.expected.drops == run.flows["defer"][defer.expected.drop_ufid]
    assert {e["port"] for e in drops} == {defer.expected.drop_port}


def _actions(run: Run, tag: str) -> dict[tuple[int, str], int]:
    rows = _tool(run, "clone").events()
    counts: dict[tuple[int, str], int] = {}
    for row in rows:
        for a in row["actions"]:
            if a["dp"] == run.scenarios[tag].dp_name:
                key = (a["recirc_id"], a["action"])
                counts[key] = counts.get(key, 0) + a["count"]
    return counts


@pytest.mark.parametrize("tag", TAGS)
def test_clone_summary_counts_each_action_type(run, tag):
    want = run.scenarios[tag].expected
    counts = _actions(run, tag)
    assert counts == want.actions
    outputs = sum(n for (_, action), n in counts.items() if action == "OUTPUT")
    if tag != "recur":  # every output reached the sink (recur's outputs go to its chain)
        assert outputs == run.sink[tag]


def test_clone_summary_follows_depth_and_limits_per_cpu(run):
    rows = _tool(run, "clone").events()
    cpus = rows[-1]["cpus"]  # running totals and peaks since the start
    every = [s.expected for s in run.scenarios.values()]
    assert max(c["peak_level"] for c in cpus) == max(w.peak_level for w in every)
    assert sum(c["deferred"] for c in cpus) == sum(w.deferred for w in every)
    assert sum(c["deferred_drops"] for c in cpus) == sum(w.deferred_drops for w in every)
    assert sum(c["recursion_drops"] for c in cpus) == sum(w.recursion_drops for w in every)
    warnings = [w for row in rows for w in row["warnings"]]
    assert any("recursion limit (5)" in w for w in warnings), warnings
    assert any("deferred action limit (9)" in w for w in warnings), warnings


@pytest.mark.parametrize("key", ["latency", "hist"])
@pytest.mark.parametrize("tag", TAGS)
def test_ovslatency_times_every_receive(run, tag, key):
    rows = [r for r in _tool(run, key).events() if "port" in r]
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["port"]] = totals.get(row["port"], 0) + row["total"]
    want = run.scenarios[tag].expected.receives
    assert {port: totals.get(port, 0) for port in want} == want
    if tag in ("out", "drop", "defer", "upcall"):  # one lookup a packet, one receive a lookup
        stats = run.stats[tag]
        assert sum(want.values()) == stats.hit + stats.missed


def test_ovslatency_buckets_add_up_to_the_total(run):
    for row in _tool(run, "latency").events():
        if "buckets" in row:
            assert sum(row["buckets"].values()) == row["total"]
