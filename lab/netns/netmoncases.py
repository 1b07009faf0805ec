"""netmon's demo case: the scenarios of ``lab/scenarios/netmon.toml`` under every sort key.

Each scenario declares its drops whole (namespace, interface, MACs, addresses, ports,
reason, location, ``pkt_type`` and the packet-type columns they count in); what each
``netmon drop -s KEY`` table must hold follows from them alone (:func:`expected_cells`).
One monitor a sort key runs through all the scenarios, printing a table every
:data:`RATE` seconds; a scenario's tables are those from its traffic until the monitors
have all been quiet for two tables.  Tables become one event per drop counted in each cell
(:func:`cells`) and are judged exactly: every cell's count, nothing else.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import build, packets, scenario, tomlfile, topology
from .declared import Table
from .errors import DeclarationError
from .monitor import ToolMonitor
from .scenario import Expectation
from .traffic import Sender
from .verdict import Verdict, judge
from .workcase import Progress

RATE = 0.5
#: netmon's sort keys, as ``-s`` takes them
SORTS = ("netns", "dmac", "smac", "dip", "sip", "flow", "flow-src", "reason", "ifname")
#: what a declared drop may say about itself, with TOML types
DROP_KEYS: dict[str, type] = {
    "netns": str, "ifname": str, "smac": str, "dmac": str, "src": str, "dst": str, "proto": str,
    "sport": int, "dport": int, "location": str, "pkt_type": str,
}
ETH_P_ARP = 0x0806
TCP_RST = 0x04


# -- traffic the shared senders do not make ---------------------------------------------------
def _arp(s: Sender, t: Table) -> Callable[[], None]:
    """``count`` ARP packets of operation ``op`` asking for ``target`` (crafted: the kernel
    itself never sends an ARP for a multicast target or of an unknown operation)."""
    iface, peer = s.interface(t)
    op, target, sender, count = t.get("op", int), t.get("target", str), t.get("sender", str), t.get("count", int)
    assert iface.mac is not None
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, packets.mac_bytes(iface.mac),
                       socket.inet_aton(sender), bytes(6), socket.inet_aton(target))
    frame = packets.ethernet(peer, iface.mac, body, ethertype=ETH_P_ARP)
    return lambda: packets.send_frames(s.netns, iface.name, [frame] * count)


def _tcp_rst(s: Sender, t: Table) -> Callable[[], None]:
    """``count`` TCP resets from ``src``:``sport`` to ``dst``:``dport`` (crafted: a socket never
    sends a reset out of nowhere); nothing listens, so the receiver drops each."""
    iface, peer = s.interface(t)
    src, dst, sport, dport = t.get("src", str), t.get("dst", str), t.get("sport", int), t.get("dport", int)
    count = t.get("count", int)
    header = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, TCP_RST, 0, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
    header = header[:16] + struct.pack("!H", packets.checksum(pseudo + header)) + header[18:]
    ip = packets.ipv4(src, dst, socket.IPPROTO_TCP, header, t.get("ip_id", int))
    assert iface.mac is not None
    frame = packets.ethernet(peer, iface.mac, ip)
    return lambda: packets.send_frames(s.netns, iface.name, [frame] * count)


def _xdp_verdict(verdict: str):
    """The lab's XDP programs: ``aborted`` returns XDP_ABORTED; ``redirect-missing`` redirects
    every frame to ifindex :data:`MISSING_IFINDEX`, which no device has."""
    from pybpfasm.dsl import ProgramDef

    def aborted(b, ctx) -> None:
        b.return_(b.btf.enum("xdp_action")["XDP_ABORTED"])

    def redirect_missing(b, ctx) -> None:
        b.return_(b.call("redirect", MISSING_IFINDEX, 0))

    body = {"aborted": aborted, "redirect-missing": redirect_missing}[verdict]
    return ProgramDef(body, "xdp", name=f"pnm_{verdict.replace('-', '_')}"[:15])


MISSING_IFINDEX = 999999


def _xdp(s: Sender, t: Table) -> Callable[[], None]:
    """The ``send`` traffic while the XDP program ``verdict`` runs on ``dev`` (in ``from``)."""
    dev, verdict = t.get("dev", str), t.get("verdict", str)
    if verdict not in ("aborted", "redirect-missing"):
        raise DeclarationError(f"{t.where}: verdict must be aborted or redirect-missing")
    inner = sender(s.topology, t.table("send"))

    def send() -> None:
        from pybpfasm.dsl import Collection
        from pybpfasm.link.xdp import attach_xdp

        pdef = _xdp_verdict(verdict)
        with Collection() as coll:
            prog = coll.load(pdef)
            with attach_xdp(prog, dev, netns=s.netns):
                inner.send()
                time.sleep(0.3)  # the frames reach the program (veth NAPI) before it goes
    return send


KINDS = {"arp": _arp, "tcp_rst": _tcp_rst, "xdp": _xdp}


class _Crafted(Sender):
    """A Sender for the kinds above, bound the way the shared Sender binds its own."""

    def __init__(self, topo: topology.Topology, traffic: Table) -> None:  # binds as Sender does, for other kinds
        self.topology = topo
        self.kind = traffic.get("kind", str)
        local = traffic.get("from", str)
        if local not in topo.namespaces:
            raise DeclarationError(f"{traffic.where}: unknown namespace {local!r}")
        self.netns = topo.namespaces[local].full
        self._send = KINDS[self.kind](self, traffic)
        traffic.done()


def sender(topo: topology.Topology, traffic: Table) -> Sender:
    return _Crafted(topo, traffic) if traffic.data.get("kind") in KINDS else Sender(topo, traffic)


# -- declarations -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Drop:
    """``count`` drops alike in every declared way."""

    count: int
    fields: Mapping[str, Any]
    reason: str | None
    columns: tuple[str, ...]


#: what a declared XDP-layer drop says (netns by local name)
XDP_KEYS: dict[str, type] = {"event": str, "ifname": str, "netns": str, "action": str, "err": str, "target": int}


@dataclass(frozen=True)
class XdpDrop:
    count: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class NetmonScenario:
    name: str
    summary: str
    sender: Sender
    settle: float
    drops: tuple[Drop, ...]
    xdp: tuple[XdpDrop, ...] = ()


@dataclass(frozen=True)
class NetmonScenarios:
    topology: topology.Topology
    scenarios: tuple[NetmonScenario, ...]


def load(name: str = "netmon", release: str | None = None) -> NetmonScenarios:
    path = scenario.SCENARIO_DIR / f"{name}.toml" if not name.endswith(".toml") else Path(name)
    doc = Table(tomlfile.read(path), str(path))
    topo = topology.load(doc.get("topology", str))
    series = scenario.kernel_series(release)
    out = []
    for t in doc.tables("scenario"):
        drops = []
        for e in t.tables("drop"):
            fields = {k: e.get(k, kind) for k, kind in DROP_KEYS.items() if k in e.data}
            if fields.get("netns", next(iter(topo.namespaces))) not in topo.namespaces:
                raise DeclarationError(f"{e.where}: unknown namespace {fields['netns']!r}")
            raw = e.data.get("reason")
            reason = scenario._reason_for(e.table("reason"), series) if isinstance(raw, dict) else e.get("reason", str)
            drops.append(Drop(e.get("count", int), fields, reason, tuple(e.strings("columns"))))
            e.done()
        xdp = []
        for e in t.tables("xdp"):
            xdp.append(XdpDrop(e.get("count", int), {k: e.get(k, kind) for k, kind in XDP_KEYS.items() if k in e.data}))
            e.done()
        out.append(NetmonScenario(t.get("name", str), t.get("summary", str), sender(topo, t.table("traffic")),
                                  float(t.get("settle", (int, float), 0.0)), tuple(drops), tuple(xdp)))
        t.done()
    doc.done()
    return NetmonScenarios(topo, tuple(out))


# -- what each sort's tables must hold --------------------------------------------------------
def sort_key(sort: str, f: Mapping[str, Any], reason: str | None, inodes: Mapping[str, int]) -> Any:
    """The row a declared drop counts in under *sort* (None: in no row, as netmon does)."""
    if sort == "netns":
        return inodes[f["netns"]]
    if sort == "reason":
        return reason
    if sort == "ifname":
        return f.get("ifname")
    if sort in ("dmac", "smac"):
        return f.get(sort)
    if "src" not in f:
        return None
    if sort in ("dip", "sip"):
        return f["dst" if sort == "dip" else "src"]
    return {"proto": f["proto"], "src": f["src"], "sport": f.get("sport", 0), "dst": f["dst"],
            "dport": f.get("dport", 0)}


def expected_cells(drops: Sequence[Drop], inodes: Mapping[str, int],
                   xdp: Sequence[XdpDrop] = ()) -> list[Expectation]:
    """Every table cell the drops fill, under every sort, with its exact count."""
    merged: dict[str, tuple[dict[str, Any], int]] = {}

    def add(n: int, cell: dict[str, Any]) -> None:
        key = repr(sorted(cell.items()))
        merged[key] = (cell, merged.get(key, (cell, 0))[1] + n)

    for d in drops:
        for sort in SORTS:
            add(d.count, {"sort": sort, "cell": "total"})
            add(d.count, {"sort": sort, "cell": "pkt_type", "key": d.fields["pkt_type"]})
            add(d.count, {"sort": sort, "cell": "location", "key": d.fields["location"]})
            if d.reason is not None:
                add(d.count, {"sort": sort, "cell": "reason", "key": d.reason})
            row = sort_key(sort, d.fields, d.reason, inodes)
            if row is not None:
                for column in (*d.columns, "total"):
                    add(d.count, {"sort": sort, "cell": "row", "key": row, "column": column})
    for x in xdp:
        row = {"event": x.fields["event"], "ifname": x.fields.get("ifname"), "netns": inodes[x.fields["netns"]],
               "action": x.fields["action"], "err": x.fields.get("err"), "target": x.fields.get("target")}
        for sort in SORTS:
            add(x.count, {"sort": sort, "cell": "xdp", **row})
    return [Expectation(n, cell) for cell, n in merged.values()]


def cells(sort: str, tables: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """netmon's JSON tables as one event per drop in each cell (zero cells are no events)."""
    out: list[dict[str, Any]] = []
    for t in tables:
        out += [{"sort": sort, "cell": "total"}] * t["total"]
        for name, table in (("pkt_type", "pkt_types"), ("location", "locations"), ("reason", "reasons")):
            for key, n in t[table].items():
                out += [{"sort": sort, "cell": name, "key": key}] * n
        for row in t["rows"]:
            for column, n in row.items():
                if column != "key" and isinstance(n, int):
                    out += [{"sort": sort, "cell": "row", "key": row["key"], "column": column}] * n
        for x in t["xdp"]:
            out += [{"sort": sort, "cell": "xdp", **{k: v for k, v in x.items() if k != "count"}}] * x["count"]
        if t["unix"] or any(t["full"].values()):
            out.append({"sort": sort, "cell": "unix/full", "unix": t["unix"], "full": t["full"]})
    return out


def netns_args(inodes: Mapping[str, int]) -> list[str]:
    return [arg for inode in inodes.values() for arg in ("--netns", str(inode))]


# -- the demo case ----------------------------------------------------------------------------
class _Monitors:
    """One netmon a sort key, each printing a JSON table every RATE seconds."""

    def __init__(self, inodes: Mapping[str, int], marker: str, extra: Sequence[str] = ()) -> None:
        self.monitors = {s: ToolMonitor("netmon", ["-s", s, "-r", str(RATE), *netns_args(inodes), *extra], marker)
                         for s in SORTS}

    def __enter__(self) -> _Monitors:
        try:
            for m in self.monitors.values():
                m.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.monitors.values():
            m.stop()

    def marks(self) -> dict[str, int]:
        return {s: len(m.events()) for s, m in self.monitors.items()}

    def wait_quiet(self, since: Mapping[str, int], tables: int = 2, limit: float = 10.0) -> None:
        """Until every monitor printed *tables* empty tables in a row after *since* (or *limit* s)."""
        give_up = time.monotonic() + limit
        while time.monotonic() < give_up:
            quiet = True
            for s, m in self.monitors.items():
                recent = m.events()[since[s]:][-tables:]
                quiet &= len(recent) == tables and all(t["total"] == 0 for t in recent)
            if quiet:
                return
            time.sleep(RATE / 4)

    def since(self, marks: Mapping[str, int]) -> dict[str, list[dict[str, Any]]]:
        return {s: m.events()[marks[s]:] for s, m in self.monitors.items()}


def run(declared: NetmonScenarios, names: Sequence[str] = (), progress: Progress | None = None,
        extra: Sequence[str] = ()) -> list[Verdict]:
    """Every scenario (or those named) under every sort key, judged cell by cell."""
    chosen = [s for s in declared.scenarios if not names or s.name in names]
    marker = declared.topology.name
    verdicts = []
    with build.built(declared.topology):
        inodes = {ns.local: build.inode(ns.full) for ns in declared.topology.namespaces.values()}
        with _Monitors(inodes, marker, extra) as mons:
            mons.wait_quiet(mons.marks())
            for sc in chosen:
                if progress:
                    progress(sc, None)
                marks = mons.marks()
                sc.sender.send()
                time.sleep(sc.settle)
                mons.wait_quiet(marks)
                observed = [c for s, tables in mons.since(marks).items() for c in cells(s, tables)]
                verdict = judge(sc.name, expected_cells(sc.drops, inodes, sc.xdp), observed)
                verdicts.append(verdict)
                if progress:
                    progress(sc, verdict)
        problems = [f"netmon -s {s} exited with {m.returncode}" for s, m in mons.monitors.items() if m.returncode]
        problems += [f"netmon -s {s} printed lines that are not JSON: {m.bad_lines[0]!r}"
                     for s, m in mons.monitors.items() if m.bad_lines]
    return [v.with_problems(problems) for v in verdicts]


@dataclass(frozen=True)
class NetmonCase:
    """netmon under its scenarios, every sort key at once (a case of ``lab demo``)."""

    declared: NetmonScenarios
    tool = "netmon"

    @property
    def marker(self) -> str:
        return self.declared.topology.name

    def scenarios(self) -> tuple[NetmonScenario, ...]:
        return self.declared.scenarios

    def run(self, names: Sequence[str], progress: Progress) -> list[Verdict]:
        return run(self.declared, names, progress)
