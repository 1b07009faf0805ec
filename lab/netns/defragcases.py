"""``pybpfasm defrag`` under the fragment scenarios (``lab/scenarios/defrag.toml``) in the
``defrag`` topology: two monitors for all of them (one printing events, one ``--summary``
lines), their lines attributed to scenarios by namespace and time, and the kernel's own
reassembly counters read around each scenario as the oracle.

Each verdict holds three checks: the tool's lines equal the declared ones exactly; each
namespace's counters moved by exactly the declared deltas; and the counters follow from the
tool's own lines (:func:`derived`), so the declarations themselves are checked by the kernel.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from pybpfasm.link.netns import entered

from . import build, sysctl, tomlfile, topology
from .declared import Table
from .errors import DeclarationError
from .monitor import ToolMonitor
from .scenario import NO_REASON, SCENARIO_DIR, Expectation, _per_kernel, kernel_series
from .traffic import Sender
from .verdict import Verdict, judge
from .workcase import Progress

#: the keys a line may be judged on, with their TOML types
KEYS: dict[str, type | tuple[type, ...]] = {
    "event": str, "summary": bool, "netns": str, "src": str, "dst": str, "id": int, "proto": str,
    "offset": int, "len": int, "more": bool, "reason": str, "user": str, "fragments": int,
    "bytes": int, "outcome": str, "holes": list,
}
#: the counters judged, as /proc/net/snmp (Ip:) names; snmp6 prefixes them with "Ip6"
COUNTERS = ("ReasmReqds", "ReasmOKs", "ReasmFails", "ReasmTimeout")
QUIET = 0.4          # seconds without a new lab line that end a scenario's window
DEADLINE = 4.0       # seconds after the settle time by which everything must be in
POLL = 0.02
SUMMARY_INTERVAL = "0.2"


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    sender: Sender
    settle: float
    #: namespace -> [(sysctl, value)] written before the traffic, restored after
    sysctls: Mapping[str, tuple[tuple[str, str], ...]]
    expect: tuple[Expectation, ...]
    #: namespace -> counter -> delta
    snmp: Mapping[str, Mapping[str, int]]

    @property
    def total(self) -> int:
        return sum(e.count for e in self.expect)


@dataclass(frozen=True)
class ScenarioSet:
    topology: topology.Topology
    scenarios: tuple[Scenario, ...]


def holes(text: str) -> list[int | None]:
    """A hole written ``"16-32"`` or ``"16-?"`` (end unknown) as the tool prints it."""
    start, _, end = text.partition("-")
    if not start.isdigit() or not (end.isdigit() or end == "?"):
        raise DeclarationError(f"hole {text!r}: write START-END or START-? (end unknown)")
    return [int(start), None if end == "?" else int(end)]


def load(name: str = "defrag") -> ScenarioSet:
    path = SCENARIO_DIR / f"{name}.toml" if not name.endswith(".toml") else Path(name)
    doc = Table(tomlfile.read(path), str(path))
    topo = topology.load(doc.get("topology", str))
    scenarios = []
    for t in doc.tables("scenario"):
        scenarios.append(_scenario(t, topo))
        t.done()
    doc.done()
    if len({s.name for s in scenarios}) != len(scenarios):
        raise DeclarationError(f"{path}: a scenario name is used twice")
    return ScenarioSet(topo, tuple(scenarios))


def _namespace(t: Table, name: str, topo: topology.Topology) -> str:
    if name not in topo.namespaces:
        raise DeclarationError(f"{t.where}: unknown namespace {name!r}")
    return name


def _field(e: Table, key: str, kind: Any) -> Any:
    """A key's value; ``reason`` may be a table from kernel series to name (the newest series
    not after the running kernel's applies; "none": a kernel without drop reasons)."""
    if key == "reason" and isinstance(e.data[key], dict):
        name = _per_kernel(e.table(key), kernel_series(), str)
        return None if name == NO_REASON else name
    return e.get(key, kind)


def _scenario(t: Table, topo: topology.Topology) -> Scenario:
    expect = []
    for e in t.tables("expect"):
        fields = {k: _field(e, k, kind) for k, kind in KEYS.items() if k in e.data}
        if "netns" in fields:
            _namespace(e, fields["netns"], topo)
        if "holes" in fields:
            fields["holes"] = [holes(h) for h in fields["holes"]]
        count = e.get("count", int)
        e.done()
        if count < 0 or not fields:
            raise DeclarationError(f"{e.where}: declare a count >= 0 and at least one key")
        expect.append(Expectation(count, fields))
    sysctls = {}
    for ns, table in t.get("sysctls", dict, {}).items():
        _namespace(t, ns, topo)
        sysctls[ns] = tuple((k, sysctl.value(v)) for k, v in table.items())
    snmp = {}
    for ns, table in t.get("snmp", dict, {}).items():
        _namespace(t, ns, topo)
        snmp[ns] = {k: int(v) for k, v in table.items()}
        unknown = set(snmp[ns]) - {p + c for c in COUNTERS for p in ("", "Ip6")}
        if unknown:
            raise DeclarationError(f"{t.where}.snmp.{ns}: unknown counter {sorted(unknown)[0]!r}")
    return Scenario(t.get("name", str), t.get("summary", str), Sender(topo, t.table("traffic")),
                    float(t.get("settle", (int, float), 0.0)), sysctls, tuple(expect), snmp)


# -- the kernel's counters -------------------------------------------------------------------
def counters(netns: str) -> dict[str, int]:
    """Ip Reasm* (snmp) and Ip6Reasm* (snmp6) of namespace *netns*."""
    with entered(netns):
        with open("/proc/thread-self/net/snmp") as f:
            lines = [ln.split() for ln in f if ln.startswith("Ip:")]
        with open("/proc/thread-self/net/snmp6") as f:
            six = dict(ln.split() for ln in f if ln.startswith("Ip6Reasm"))
    names, values = lines[0][1:], lines[1][1:]
    out = {n: int(v) for n, v in zip(names, values) if n in COUNTERS}
    out.update({n: int(v) for n, v in six.items() if n[3:] in COUNTERS})
    return out


def derived(lines: Sequence[Mapping[str, Any]], inode: int) -> dict[str, int]:
    """The counters the kernel must have moved in namespace *inode*, from the tool's lines:
    a fragment is a request, a reassembled datagram an OK, a timed-out queue a timeout
    and a failure, and so is an overlap, a too-far queue and a fragment memory refused.

    IPv6 datagrams conntrack reassembled are left out: nf_ct_frag6_gather keeps no counters.
    """
    out: Counter[str] = Counter()
    conntrack6 = any(ln.get("user") == "conntrack" and ":" in ln["src"] for ln in lines
                     if ln.get("netns") == inode)
    for ln in lines:
        if ln.get("netns") != inode:
            continue
        six = ":" in ln["src"]
        if six and conntrack6:
            continue
        prefix = "Ip6" if six else ""
        if ln.get("summary"):
            if ln["outcome"] == "timeout":
                out[prefix + "ReasmTimeout"] += 1
            if ln["outcome"] in ("timeout", "overlap", "too_far"):
                out[prefix + "ReasmFails"] += 1
        elif ln["event"] == "fragment":
            out[prefix + "ReasmReqds"] += 1
        elif ln["event"] == "reassembled":
            out[prefix + "ReasmOKs"] += 1
        elif ln["event"] == "evicted":
            out[prefix + "ReasmFails"] += 1
    return dict(out)


# -- running ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DefragCase:
    """The fragment scenarios, for ``lab demo`` and the tool's tests."""

    declared: ScenarioSet
    tool = "defrag"

    @property
    def marker(self) -> str:
        return self.declared.topology.name

    def scenarios(self) -> tuple[Scenario, ...]:
        return self.declared.scenarios

    def run(self, names: Sequence[str], progress: Progress,
            lines: list[Mapping[str, Any]] | None = None) -> list[Verdict]:
        """The scenarios named (all when none are), judged; every lab line the monitors
        printed is appended to *lines* when given (a peer's comparison)."""
        unknown = sorted(set(names) - {s.name for s in self.declared.scenarios})
        if unknown:
            raise DeclarationError(f"no scenario {unknown[0]!r}")
        chosen = [s for s in self.declared.scenarios if not names or s.name in names]
        topo = self.declared.topology
        with build.built(topo), ToolMonitor(self.tool, (), self.marker) as events, \
                ToolMonitor(self.tool, ("--summary", "-i", SUMMARY_INTERVAL), self.marker) as summaries:
            inodes = {ns.local: build.inode(ns.full) for ns in topo.namespaces.values()}
            verdicts = [self._one(s, topo, inodes, events, summaries, progress, lines) for s in chosen]
        problems = []
        for monitor in (events, summaries):
            if monitor.returncode != 0:
                problems.append(f"a monitor's exit status was {monitor.returncode}")
            if monitor.lost:
                problems.append(f"a monitor reported {monitor.lost} lost events")
            if monitor.bad_lines:
                problems.append(f"a monitor printed a line that is not a JSON object: {monitor.bad_lines[0]!r}")
        return [v.with_problems(problems) for v in verdicts]

    def _one(self, s: Scenario, topo: topology.Topology, inodes: dict[str, int],
             events: ToolMonitor, summaries: ToolMonitor, progress: Progress,
             lines: list[Mapping[str, Any]] | None) -> Verdict:
        ours = set(inodes.values())

        def lab_lines() -> tuple[list[Mapping[str, Any]], ...]:
            return tuple([ln for ln in m.events() if ln.get("netns") in ours and not ln.get("memory")]
                         for m in (events, summaries))

        progress(s, None)
        full = {local: ns.full for local, ns in topo.namespaces.items()}
        before = {local: counters(full[local]) for local in full}
        start = tuple(len(lines) for lines in lab_lines())
        restore = _write_sysctls(full, s.sysctls)
        try:
            s.sender.send()
            seen = _collect(lab_lines, start, s)
        finally:
            _write_sysctls(full, restore)
        after = {local: counters(full[local]) for local in full}
        if lines is not None:
            lines.extend(seen)
        expected = []
        for e in s.expect:
            fields = dict(e.fields)
            if "netns" in fields:
                fields["netns"] = inodes[fields["netns"]]
            expected.append(Expectation(e.count, fields))
        problems = []
        for local in full:
            moved = {k: after[local][k] - before[local][k] for k in after[local]
                     if after[local][k] != before[local][k]}
            if moved != dict(s.snmp.get(local, {})):
                problems.append(f"{local}: the kernel's counters moved by {moved}, declared {dict(s.snmp.get(local, {}))}")
            from_tool = derived(seen, inodes[local])
            if from_tool != moved:
                problems.append(f"{local}: the tool's lines make counters {from_tool}, the kernel's moved {moved}")
        verdict = judge(s.name, expected, seen, problems)
        progress(s, verdict)
        return verdict


def _write_sysctls(full: Mapping[str, str], wanted: Mapping[str, Sequence[tuple[str, str]]]
                   ) -> dict[str, tuple[tuple[str, str], ...]]:
    """Write *wanted* in order; what restores the old values (in reverse order)."""
    restore: dict[str, tuple[tuple[str, str], ...]] = {}
    for local, pairs in wanted.items():
        old = []
        with entered(full[local]):
            for name, value in pairs:
                with open(f"{sysctl.PROC_SYS}/{'/'.join(sysctl.components(name))}") as f:
                    old.append((name, f.read().strip()))
                sysctl.write(name, value)
        restore[local] = tuple(reversed(old))
    return restore


def _collect(lab_lines: Any, start: tuple[int, ...], s: Scenario) -> list[Mapping[str, Any]]:
    """Each monitor's lab lines after its *start* once the scenario's window has closed."""
    begin = time.monotonic()
    deadline = begin + s.settle + DEADLINE
    last_count, last_change = 0, begin
    while True:
        now = time.monotonic()
        lines = [ln for got, first in zip(lab_lines(), start) for ln in got[first:]]
        if len(lines) != last_count:
            last_count, last_change = len(lines), now
        enough = len(lines) >= s.total and now >= begin + s.settle
        if (enough and now - last_change >= QUIET) or now >= deadline:
            return lines
        time.sleep(POLL)


CASES = (DefragCase(load()),)
