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
import re
import shutil
import signal
import subprocess
import tempfile
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
    peer: dict[str, dict[tuple[str, ...], int]] | None = None  #: bpftrace's maps


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


#: the same counts from bpftrace (where the guest has the peers' userland): one probe each
BPFTRACE = """BEGIN { printf("ready\\n"); }
tracepoint:openvswitch:ovs_do_execute_action {
  @actions[str(args->dp_name), args->recirc_id, args->action_type] = count(); }
tracepoint:skb:kfree_skb /(args->reason >> 16) == 3/ { @ovs_drops[args->reason] = count(); }
kprobe:ovs_vport_receive { @start[tid] = nsecs; @receives[((struct sk_buff *)arg1)->dev->name] = count(); }
kretprobe:ovs_vport_receive /@start[tid]/ { @timed = count(); delete(@start[tid]); }
"""


class Bpftrace:
    """bpftrace running BPFTRACE; its maps (printed at SIGINT) as {map: {key tuple: count}}."""

    def __init__(self, folder: Path) -> None:
        self.out = folder / "bpftrace.out"
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(["bpftrace", "-e", BPFTRACE], stdout=out,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while "ready" not in self.out.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bpftrace did not start: {self.out.read_text()[-300:]}")
            time.sleep(0.5)

    def stop(self) -> dict[str, dict[tuple[str, ...], int]]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        maps: dict[str, dict[tuple[str, ...], int]] = {}
        for line in self.out.read_text().splitlines():
            found = re.fullmatch(r"@(\w+)(?:\[(.*)\])?: (\d+)", line)
            if found:
                key = tuple(k.strip() for k in found.group(2).split(",")) if found.group(2) else ()
                maps.setdefault(found.group(1), {})[key] = int(found.group(3))
        return maps


@pytest.fixture(scope="module")
def run():
    from pybpfasm.lab.netns import monitor
    from pybpfasm.lab.vm import ovs_scenarios
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
        peer = Bpftrace(Path(tempfile.mkdtemp(prefix="pov-"))) if shutil.which("bpftrace") else None
        before = {tag: (s.dp.stats(), _sent(s)) for tag, s in scenarios.items()}
        for s in scenarios.values():
            s.send()
        time.sleep(1)
        for mon in result.tools.values():
            mon.stop()
        result.peer = peer.stop() if peer is not None else None
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


def _few_kretprobe_instances() -> bool:
    """Whether kretprobes get only num_possible_cpus() instances: kernels built without
    preemption (Debian's 5.10).  A PREEMPT_DYNAMIC kernel (its debugfs has sched/preempt:
    Debian's 6.1 and 6.12) is built preemptible and gives at least 10."""
    return not os.path.exists("/sys/kernel/debug/sched/preempt")


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
                      "peer": {m: {",".join(k): n for k, n in v.items()} for m, v in (run.peer or {}).items()},
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
    if tag == "recur" and _few_kretprobe_instances():
        pytest.xfail("a kretprobe keeps one instance per CPU on this non-preemptible kernel "
                     "(2 here), so returns of receives nested deeper are not seen")
    assert {port: totals.get(port, 0) for port in want} == want
    if tag in ("out", "drop", "defer", "upcall"):  # one lookup a packet, one receive a lookup
        stats = run.stats[tag]
        assert sum(want.values()) == stats.hit + stats.missed


def test_ovslatency_buckets_add_up_to_the_total(run):
    for row in _tool(run, "latency").events():
        if "buckets" in row:
            assert sum(row["buckets"].values()) == row["total"]


# -- bpftrace on the same run (guests with the peers' userland: tests/vm/test_ovs_tools.py) --
def _peer(run: Run) -> dict[str, dict[tuple[str, ...], int]]:
    if run.peer is None:
        pytest.skip("no bpftrace in this guest (the peers' userland has it)")
    return run.peer


def test_bpftrace_counts_the_same_actions(run):
    """Both count the same tracepoint: every (datapath, recirc_id, action type) agrees."""
    from pybpfasm.tools.common import ovs

    names = ovs.action_names()
    theirs = {(dp, int(recirc), names[int(a)]): n for (dp, recirc, a), n in _peer(run).get("actions", {}).items()
              if dp.startswith("pov-")}
    ours = {}
    for row in _tool(run, "clone").events():
        for a in row["actions"]:
            key = (a["dp"], a["recirc_id"], a["action"])
            ours[key] = ours.get(key, 0) + a["count"]
    assert theirs == {k: n for k, n in ours.items() if k[0].startswith("pov-")}


def test_bpftrace_counts_the_same_ovs_drop_reasons(run):
    """bpftrace filters on the subsystem of the reason alone, so it misses what the module frees
    with a core reason (the lost upcalls: NOT_SPECIFIED at ovs_dp_process_packet); the rest agree.
    Before 6.6 there are no subsystem reasons and it counts nothing."""
    from pybpfasm.tools.common import ovs

    theirs = _peer(run).get("ovs_drops", {})
    if not _has_reasons():
        assert theirs == {}
        return
    names = ovs.drop_reason_names()
    ours: dict[str, int] = {}
    for ev in _tool(run, "dropmon").events():
        if ev["reason"] in names.values():
            ours[ev["reason"]] = ours.get(ev["reason"], 0) + 1
    assert {names[int(r)]: n for (r,), n in theirs.items()} == ours


def test_bpftrace_sees_the_same_receives_but_times_fewer(run):
    """Receives per device agree.  Timed receives do not: bpftrace keys the start time by
    thread, as dsahern's per-CPU slot does, so the recur chain's nested receives overwrite it
    and only the innermost of a packet's 6 is timed (5 of 6 lost a packet); ovslatency keeps a
    stack per CPU and times all 6."""
    peer = _peer(run)
    receives = {dev: n for (dev,), n in peer.get("receives", {}).items() if dev.startswith("pov")}
    ours: dict[str, int] = {}
    for row in _tool(run, "latency").events():
        if row.get("port", "all") != "all":
            ours[row["port"]] = ours.get(row["port"], 0) + row["total"]
    assert receives == {p: n for p, n in ours.items() if p.startswith("pov")}
    nested = 5 * run.scenarios["recur"].expected.flows[run.scenarios["recur"].ufid(1)]
    assert peer["timed"][()] == sum(ours.values()) - nested
