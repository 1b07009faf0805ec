"""xdp-l2fwd's and xdp-dummy's demo cases: frames of known MACs and VLAN tags sent from ``tx`` into the
switch namespace's p0, where xdp-l2fwd forwards them by its FDB to r1 and r2 (whose veth
ends run xdp-dummy), passes misses up the switch's own stack and drops short frames.

Everything expected follows from the FDB and the frames alone: each frame arrives where its
entry sends it with its tags popped or pushed as the entry says (compared byte for byte, as
captured on ``AF_PACKET`` with the kernel's VLAN offload undone), misses arrive at p0's own
stack, and ``stats`` and ``fdb list`` grow by exactly the frames and bytes sent.  Without
xdp-dummy on r1, frames redirected to r1 are counted forwarded and never arrive.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ..workloads import frames as wire
from . import build, topology
from .errors import LabError
from .scenario import Expectation
from .verdict import Verdict, judge
from .workcase import Progress

TOPOLOGY = topology.load("xdpfwd")
NS = {local: ns.full for local, ns in TOPOLOGY.namespaces.items()}
SENDER, R1, R2 = (TOPOLOGY.interface(ns, "eth0").mac or "" for ns in ("tx", "r1", "r2"))
PUSHED = "02:00:0a:58:00:21"   # served by r2 through a pushed tag
GONE = "02:00:0a:58:00:31"     # its device (p3) is deleted after its entry is added
UNKNOWN = "02:00:0a:58:00:99"
BROADCAST = "ff:ff:ff:ff:ff:ff"
Q, AD = wire.ETH_P_8021Q, 0x88A8
VERDICTS = ("forwarded", "passed", "dropped", "redirect_errors")
#: the FDB: (MAC, VLAN or None, device, extra fdb-add options)
FDB = (
    (R1, None, "p1", ()), (R1, 10, "p1", ()), (R2, 20, "p2", ()), (R2, 30, "p2", ("--pop-inner",)),
    (R1, 31, "p1", ()), (PUSHED, None, "p2", ("--push-vlan", "50")), (GONE, None, "p3", ()),
    (BROADCAST, 40, "p1", ()), (BROADCAST, 40, "p2", ()),
)
#: where frames are captured: receiver (or "stack": the switch's own) -> (namespace, device)
CAPTURES = {"r1": ("r1", "eth0"), "r2": ("r2", "eth0"), "stack": ("sw", "p0")}


@dataclass(frozen=True)
class Flow:
    """*count* copies of a frame: where it must arrive (None: nowhere) and as what."""

    count: int
    dst: str
    tags: tuple[tuple[int, int], ...]
    #: where each copy arrives: a receiver, "stack" (the switch's own), "r1+r2" (both), None
    at: Optional[str]
    verdict: str
    #: the tags it arrives with (None: as sent)
    arrives_with: Optional[tuple[tuple[int, int], ...]] = None
    #: cut the frame to this many bytes (a short frame)
    cut: Optional[int] = None
    #: its FDB entry (MAC, VLAN or None), whose counters must grow
    entry: Optional[tuple[str, Optional[int]]] = None

    def sent(self, seq: int) -> bytes:
        data = wire.frame(self.dst, SENDER, b"pbl-xdp %04d" % seq + bytes(40), self.tags)
        return data if self.cut is None else data[:self.cut]

    def received(self, seq: int) -> bytes:
        if self.arrives_with is None:
            return self.sent(seq)
        return wire.frame(self.dst, SENDER, b"pbl-xdp %04d" % seq + bytes(40), self.arrives_with)


@dataclass(frozen=True)
class XdpScenario:
    name: str
    summary: str
    flows: tuple[Flow, ...]
    #: commands (``pybpfasm`` arguments) run before the frames are sent
    before: tuple[tuple[str, ...], ...] = ()


def _fwd(count: int, dst: str, vlan: Optional[int], tags=(), at: str = "r1", arrives=()) -> Flow:
    return Flow(count, dst, tuple(tags), at, "forwarded", tuple(arrives), entry=(dst, vlan))


SCENARIOS = (
    XdpScenario("l2fwd-untagged", "5 untagged frames to r1's MAC: at r1, bytes unchanged",
                (Flow(5, R1, (), "r1", "forwarded", entry=(R1, None)),)),
    XdpScenario("l2fwd-vlan", "802.1Q: 4 frames VLAN 10 (priority 3) to r1, 3 VLAN 20 to r2: tag popped",
                (_fwd(4, R1, 10, [(Q, 3 << 13 | 10)]), _fwd(3, R2, 20, [(Q, 20)], "r2"))),
    XdpScenario("l2fwd-qinq", "QinQ: 3 frames 802.1ad 30/7 to r2, both tags popped; 2 frames "
                "30/7 to r1 (no entry: passed); 2 frames 31/8 to r1, outer popped",
                (_fwd(3, R2, 30, [(AD, 30), (Q, 7)], "r2"),
                 Flow(2, R1, ((AD, 30), (Q, 7)), "stack", "passed"),
                 _fwd(2, R1, 31, [(AD, 31), (Q, 8)], "r1", [(Q, 8)]))),
    XdpScenario("l2fwd-push", "4 untagged frames to a MAC whose entry pushes VLAN 50: at r2 tagged",
                (_fwd(4, PUSHED, None, (), "r2", [(Q, 50)]),)),
    XdpScenario("l2fwd-miss", "misses go up the switch's stack: 3 to an unknown MAC, 2 to r1 on an "
                "unknown VLAN, 2 whose device is gone (redirect errors)",
                (Flow(3, UNKNOWN, (), "stack", "passed"), Flow(2, R1, ((Q, 99),), "stack", "passed"),
                 Flow(2, GONE, (), "stack", "redirect_errors"))),
    XdpScenario("l2fwd-broadcast", "3 broadcast frames on VLAN 40, whose group is p1 and p2: 3 at r1 "
                "and 3 at r2, untagged, counted once each (BPF_F_BROADCAST)",
                (_fwd(3, BROADCAST, 40, [(Q, 40)], "r1+r2"),)),
    XdpScenario("l2fwd-short", "3 frames of 16 bytes that announce a VLAN tag: dropped, seen nowhere",
                (Flow(3, R1, ((Q, 10),), None, "dropped", cut=16),)),
)
#: xdp-dummy's scenarios: a veth delivers a redirect only while its peer runs an XDP program
DUMMY_SCENARIOS = (
    XdpScenario("dummy-detached", "xdp-dummy detached from r1: 3 frames redirected to r1, none arrive",
                (Flow(3, R1, (), None, "forwarded", entry=(R1, None)),),
                (("xdp-dummy", "detach", "eth0", "--netns", NS["r1"]),)),
    XdpScenario("dummy-attached", "xdp-dummy attached to r1 again: 3 frames redirected, 3 arrive",
                (Flow(3, R1, (), "r1", "forwarded", entry=(R1, None)),),
                (("xdp-dummy", "attach", "eth0", "--netns", NS["r1"]),)),
)


def _tool(*args: str) -> list[dict[str, Any]]:
    """``pybpfasm ARGS --json``: its JSON lines; a failure is a LabError with its last line."""
    done = subprocess.run([sys.executable, "-m", "pybpfasm.cli", *args, "--json"],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise LabError(f"'{' '.join(args)}' failed: {last}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _counters() -> tuple[dict[str, dict[str, int]], dict[tuple, tuple[int, int]]]:
    """``stats`` and ``fdb list`` of the switch, now."""
    stats = _tool("xdp-l2fwd", "stats", "--netns", NS["sw"])[0]
    fdb = {(e["mac"], e["vlan"]): (e["packets"], e["bytes"])
           for e in _tool("xdp-l2fwd", "fdb", "list", "--netns", NS["sw"])}
    return stats, fdb


def expectations(scenario: XdpScenario) -> list[Expectation]:
    """What must be seen: each frame where it arrives, and the counters' growth."""
    out = []
    totals = {v: [0, 0] for v in VERDICTS}
    entries: dict[tuple, list[int]] = {}
    for seq, flow in enumerate(scenario.flows):
        size = len(flow.sent(seq))
        for at in (flow.at or "").split("+"):
            if at:
                out.append(Expectation(flow.count, {"at": at, "frame": flow.received(seq).hex()}))
        totals[flow.verdict][0] += flow.count
        totals[flow.verdict][1] += flow.count * size
        if flow.entry is not None:
            grown = entries.setdefault(flow.entry, [0, 0])
            grown[0] += flow.count
            grown[1] += flow.count * size
    out += [Expectation(1, {"verdict": v, "packets": p, "bytes": b}) for v, (p, b) in totals.items()]
    out += [Expectation(1, {"entry": _entry(key), "packets": p, "bytes": b})
            for key, (p, b) in entries.items()]
    return out


def _entry(key: tuple[str, Optional[int]]) -> str:
    mac, vlan = key
    return f"{mac} {'untagged' if vlan is None else f'vlan {vlan}'}"


def run_one(scenario: XdpScenario, captures: Mapping[str, wire.Capture]) -> Verdict:
    """Send the scenario's frames, then judge what arrived and how the counters grew."""
    for argv in scenario.before:
        _tool(*argv)
    stats, fdb = _counters()
    for seq, flow in enumerate(scenario.flows):
        wire.send(NS["tx"], "eth0", [flow.sent(seq)] * flow.count)
    events: list[Mapping[str, Any]] = []
    for at, cap in captures.items():
        expect = sum(f.count for f in scenario.flows if at in (f.at or "").split("+"))
        events += [{"at": at, "frame": data.hex()} for data in cap.frames(expect)]
    stats_after, fdb_after = _counters()
    events += [{"verdict": v, "packets": stats_after[v]["packets"] - stats[v]["packets"],
                "bytes": stats_after[v]["bytes"] - stats[v]["bytes"]} for v in VERDICTS]
    events += [{"entry": _entry(key), "packets": p - fdb[key][0], "bytes": b - fdb[key][1]}
               for key, (p, b) in fdb_after.items() if (p, b) != fdb[key]]
    return judge(scenario.name, expectations(scenario), events)


@dataclass(frozen=True)
class XdpCase:
    """A tool's scenarios in the ``xdpfwd`` topology, the forwarder and the FDB set up once."""

    tool: str
    all: tuple[XdpScenario, ...]
    marker = TOPOLOGY.name

    def scenarios(self) -> tuple[XdpScenario, ...]:
        return self.all

    def run(self, names: Sequence[str], progress: Progress) -> list[Verdict]:
        chosen = [s for s in self.all if not names or s.name in names]
        with build.built(TOPOLOGY), Forwarder() as problems:
            if problems:
                return [judge(s.name, expectations(s), [], problems) for s in chosen]
            captures = {at: wire.Capture(NS[ns], dev) for at, (ns, dev) in CAPTURES.items()}
            try:
                verdicts = []
                for scenario in chosen:
                    progress(scenario, None)
                    verdicts.append(run_one(scenario, captures))
                    progress(scenario, verdicts[-1])
                return verdicts
            finally:
                for cap in captures.values():
                    cap.close()


class Forwarder:
    """xdp-dummy on the receivers, xdp-l2fwd on p0 with :data:`FDB`, p3 then deleted; all
    detached (and unpinned) on the way out.  The block gets the set-up's problems ([]: none)."""

    def __enter__(self) -> list[str]:
        try:
            for ns in ("r1", "r2"):
                _tool("xdp-dummy", "attach", "eth0", "--netns", NS[ns])
            _tool("xdp-l2fwd", "attach", "p0", "--netns", NS["sw"])
            for mac, vlan, dev, extra in FDB:
                vid = ["--vlan", str(vlan)] if vlan is not None else []
                _tool("xdp-l2fwd", "fdb", "add", "--mac", mac, *vid, "--dev", dev, *extra, "--netns", NS["sw"])
            subprocess.run(["ip", "-n", NS["sw"], "link", "del", "p3"], check=True, capture_output=True)
        except LabError as err:
            return [str(err)]
        return []

    def __exit__(self, *exc: object) -> None:
        for tool, ns in (("xdp-l2fwd", "sw"), ("xdp-dummy", "r1"), ("xdp-dummy", "r2")):
            with contextlib.suppress(LabError):  # not attached (a set-up that failed part-way)
                _tool(tool, "detach", "--netns", NS[ns])


CASES = (XdpCase("xdp-l2fwd", SCENARIOS), XdpCase("xdp-dummy", DUMMY_SCENARIOS))
