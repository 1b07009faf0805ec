"""The datapath tracers' demo cases: skbtracer and datapath on the datapath topology's known
packets (:mod:`pybpfasm.lab.workloads.datapath`), each packet's exact ordered hop list.

A tool's events are grouped into packets by skb pointer and IP header (a pointer the kernel
reuses for another packet is another packet) in the order they were printed; a packet ends
at ``kfree_skb``/``consume_skb``.  A hop is ``HOOK@NS/DEV`` (skbtracer) or ``HOP@NS/DEV``
(datapath, ``NS/FROM->DEV`` for forward and bridge hops), NS being the topology's local
namespace name (``-`` for an skb no namespace owns any more).

What the kernel does is what is expected (6.18, measured with these tools and bpftrace):
a veth hand-off is ``net_dev_queue`` and ``net_dev_start_xmit`` on the sender's device,
``netif_rx`` on the peer, ``net_dev_xmit`` (the skb already belongs to the peer: skb->dev is
the peer) and ``netif_receive_skb`` on the peer.  Of the ends of an skb's life only some have
a tracepoint: the SYN a listener answers is freed with ``consume_skb`` (no device, no
namespace), a forwarded datagram nft drops with ``kfree_skb`` (NETFILTER_DROP, on the
receiving device); the SYN-ACK, the ACK, the RST and the datagrams UDP delivers are freed
with ``__kfree_skb``/``__consume_stateless_skb``, which no tracepoint reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..workloads import datapath as work
from . import build, topology
from .errors import LabError
from .monitor import ToolMonitor
from .scenario import Expectation
from .verdict import Verdict, judge
from .workcase import Progress

TOPOLOGY = topology.load("datapath")
PREFIX = TOPOLOGY.prefix
END_HOOKS = ("kfree_skb", "consume_skb")


def veth(a: str, b: str) -> list[str]:
    """skbtracer's hooks for one veth hand-off from *a* to *b* (``NS/DEV`` each)."""
    return [f"net_dev_queue@{a}", f"net_dev_start_xmit@{a}", f"netif_rx@{b}", f"net_dev_xmit@{b}",
            f"netif_receive_skb@{b}"]


CL_RT, RT_SV = veth("cl/cl0", "rt/r0"), veth("rt/r1", "sv/sv0")
SV_RT, RT_CL = veth("sv/sv0", "rt/r1"), veth("rt/r0", "cl/cl0")
B1_SW, SW_B2 = veth("b1/eth0", "sw/p1"), veth("sw/p2", "b2/eth0")
TCP_OUT = f"{work.CLIENT}:{work.TCP_SPORT}->{work.SERVER}:{work.TCP_PORT}"
TCP_BACK = f"{work.SERVER}:{work.TCP_PORT}->{work.CLIENT}:{work.TCP_SPORT}"
UDP_BRIDGED = f"U:{work.B1}:{work.UDP_SPORT}->{work.B2}:{work.UDP_PORT}"
UDP_DROPPED = f"U:{work.CLIENT}:{work.DROP_SPORT}->{work.SERVER}:{work.DROP_PORT}"
R0_MAC = TOPOLOGY.interface("rt", "r0").mac
BRIDGED = 2  # datagrams in the bridged flow
DROPPED = 2  # datagrams nft drops


def _hops(*hops: str) -> str:
    return " > ".join(hops)


def _skbtracer_handshake() -> list[Expectation]:
    return [Expectation(1, {"packet": f"T_SYN:{TCP_OUT}", "hops": _hops(*CL_RT, *RT_SV, "consume_skb@-/-")}),
            Expectation(1, {"packet": f"T_ACK,SYN:{TCP_BACK}", "hops": _hops(*SV_RT, *RT_CL)}),
            Expectation(1, {"packet": f"T_ACK:{TCP_OUT}", "hops": _hops(*CL_RT, *RT_SV)}),
            Expectation(1, {"packet": f"T_ACK,RST:{TCP_OUT}", "hops": _hops(*CL_RT, *RT_SV)})]


def _router_only() -> list[Expectation]:
    """The handshake under ``--filter-netns`` of the router: its half of each hand-off."""
    out, back = [*CL_RT[2:], *RT_SV[:2]], [*SV_RT[2:], *RT_CL[:2]]
    return [Expectation(1, {"packet": f"T_SYN:{TCP_OUT}", "hops": _hops(*out)}),
            Expectation(1, {"packet": f"T_ACK,SYN:{TCP_BACK}", "hops": _hops(*back)}),
            Expectation(1, {"packet": f"T_ACK:{TCP_OUT}", "hops": _hops(*out)}),
            Expectation(1, {"packet": f"T_ACK,RST:{TCP_OUT}", "hops": _hops(*out)})]


def _datapath_handshake() -> list[Expectation]:
    out = _hops("tx@cl/cl0", "rx@rt/r0", "forward@rt/r0->r1", "rx@sv/sv0")
    back = _hops("tx@sv/sv0", "rx@rt/r1", "forward@rt/r1->r0", "rx@cl/cl0")
    return [Expectation(1, {"packet": f"S:{TCP_OUT}", "hops": out}),
            Expectation(1, {"packet": f"S.:{TCP_BACK}", "hops": back}),
            Expectation(1, {"packet": f".:{TCP_OUT}", "hops": out}),
            Expectation(1, {"packet": f"R.:{TCP_OUT}", "hops": out})]


@dataclass(frozen=True)
class PathScenario:
    name: str
    summary: str
    traffic: Callable[[str], None]
    args: tuple[str, ...]
    expect: Callable[[], list[Expectation]]


SKBTRACER = (
    PathScenario("skbtracer-routed-tcp", "a TCP handshake and reset forwarded by the router: every skb hook",
                 work.tcp_handshake, ("-H", work.SERVER, "-P", str(work.TCP_PORT)), _skbtracer_handshake),
    PathScenario("skbtracer-router-netns", "the same under --filter-netns of the router: its hooks only",
                 work.tcp_handshake, ("-H", work.SERVER, "--filter-netns", f"/run/netns/{PREFIX}rt"),
                 _router_only),
    PathScenario("skbtracer-pcap-filter", "the same under --filter 'tcp[tcpflags] & tcp-syn != 0': SYN, SYN-ACK",
                 work.tcp_handshake, ("--filter", f"host {work.SERVER} and tcp[tcpflags] & tcp-syn != 0"),
                 lambda: _skbtracer_handshake()[:2]),
    PathScenario("skbtracer-mac-filter", "the handshake under --filter 'ether dst' of the router's r0: "
                 "the first leg of each packet to it", work.tcp_handshake, ("--filter", f"ether dst {R0_MAC}"),
                 lambda: [Expectation(1, {"packet": e.fields["packet"], "hops": _hops(*CL_RT)})
                          for e in _skbtracer_handshake() if e.fields["packet"] != f"T_ACK,SYN:{TCP_BACK}"]),
    PathScenario("skbtracer-keep", "the same with --keep: each packet matched once is followed to its end",
                 work.tcp_handshake, ("--filter", f"ether dst {R0_MAC}", "--keep"),
                 lambda: [e for e in _skbtracer_handshake() if e.fields["packet"] != f"T_ACK,SYN:{TCP_BACK}"]),
    PathScenario("skbtracer-bridged-udp", f"{BRIDGED} UDP datagrams across the bridge",
                 work.bridged_udp, ("-H", work.B2, "--proto", "udp"),
                 lambda: [Expectation(BRIDGED, {"packet": UDP_BRIDGED, "hops": _hops(*B1_SW, *SW_B2)})]),
    PathScenario("skbtracer-nft-drop", f"{DROPPED} UDP datagrams the router's nft forward chain drops",
                 work.nft_drop, ("-H", work.SERVER, "-P", str(work.DROP_PORT)),
                 lambda: [Expectation(DROPPED, {"packet": UDP_DROPPED,
                                                "hops": _hops(*CL_RT, "kfree_skb@rt/r0")})]),
)
DATAPATH = (
    PathScenario("datapath-routed-tcp", "a TCP handshake and reset: tx, rx, forward, rx",
                 work.tcp_handshake, ("--host", work.SERVER, "--proto", "tcp"), _datapath_handshake),
    PathScenario("datapath-bridged-udp", f"{BRIDGED} UDP datagrams: tx, rx, bridge, rx",
                 work.bridged_udp, ("--host", work.B2),
                 lambda: [Expectation(BRIDGED, {"packet": UDP_BRIDGED.removeprefix("U"), "hops": _hops(
                     "tx@b1/eth0", "rx@sw/p1", "bridge@sw/p1->p2", "rx@b2/eth0")})]),
    PathScenario("datapath-nft-drop", f"{DROPPED} UDP datagrams: tx, rx, then netfilter drops them",
                 work.nft_drop, ("--host", work.SERVER, "--dport", str(work.DROP_PORT)),
                 lambda: [Expectation(DROPPED, {"packet": UDP_DROPPED.removeprefix("U"), "hops": _hops(
                     "tx@cl/cl0", "rx@rt/r0", "netfilter@rt/r0")})]),
)


def _skbtracer_packet(ev: Mapping[str, Any]) -> tuple[str, str]:
    return ev["pkt_info"], ev["hook"]


def _datapath_packet(ev: Mapping[str, Any]) -> tuple[str, str]:
    flow = f"{ev['src']}:{ev['sport']}->{ev['dst']}:{ev['dport']}"
    return (f"{ev['tcp_flags']}:{flow}" if ev["tcp_flags"] is not None else f":{flow}"), ev["hop"]


def packets(events: Sequence[Mapping[str, Any]], names: Mapping[int, str],
            describe: Callable[[Mapping[str, Any]], tuple[str, str]]) -> list[dict[str, str]]:
    """Events grouped into packets (skb pointer and IP header, in printed order), each
    ``{"packet": ..., "hops": "HOP@NS/DEV > ..."}``."""
    open_: dict[tuple, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for ev in events:
        packet, hop = describe(ev)
        key = (ev["skb"], packet, ev.get("ip_id"))
        group = open_.get(key)
        if group is None:
            group = open_[key] = {"packet": packet, "hops": []}
            out.append(group)
        device = ev["ifname"] or "-"
        if ev.get("from"):
            device = f"{ev['from']}->{device}"
        group["hops"].append(f"{hop}@{names.get(ev['netns'] or 0, '-')}/{device}")
        if ev.get("hook") in END_HOOKS:
            del open_[key]
    return [{"packet": g["packet"], "hops": _hops(*g["hops"])} for g in out]


@dataclass(frozen=True)
class PathCase:
    tool: str
    all: tuple[PathScenario, ...]
    describe: Callable[[Mapping[str, Any]], tuple[str, str]]
    marker = TOPOLOGY.name

    def scenarios(self) -> tuple[PathScenario, ...]:
        return self.all

    def run(self, names: Sequence[str], progress: Progress) -> list[Verdict]:
        chosen = [s for s in self.all if not names or s.name in names]
        verdicts = []
        with build.built(TOPOLOGY):
            inodes = {build.inode(ns.full): ns.local for ns in TOPOLOGY.namespaces.values()}
            for scenario in chosen:
                progress(scenario, None)
                verdict = self.run_one(scenario, inodes)
                verdicts.append(verdict)
                progress(scenario, verdict)
        return verdicts

    def run_one(self, scenario: PathScenario, inodes: Mapping[int, str]) -> Verdict:
        """One scenario under ``pybpfasm TOOL --json ARGS``; a tool that fails is the
        scenario's mismatch, with the reason."""
        monitor = ToolMonitor(self.tool, scenario.args, TOPOLOGY.name)
        try:
            with monitor:
                scenario.traffic(PREFIX)
        except (OSError, RuntimeError, LabError) as err:
            return judge(scenario.name, scenario.expect(), [], [str(err)])
        problems = []
        if monitor.returncode != 0:
            problems.append(f"the tool's exit status was {monitor.returncode}: "
                            f"{monitor.stderr[-1] if monitor.stderr else ''}")
        if monitor.lost:
            problems.append(f"the tool lost {monitor.lost} events")
        if monitor.bad_lines:
            problems.append(f"{len(monitor.bad_lines)} lines that are not JSON objects, e.g. {monitor.bad_lines[0]!r}")
        try:
            observed = packets(monitor.events(), inodes, self.describe)
        except (KeyError, TypeError) as err:
            observed, problems = [], [*problems, f"the tool's JSON objects are not what it promises: {err!r}"]
        return judge(scenario.name, scenario.expect(), observed, problems)


CASES = (PathCase("skbtracer", SKBTRACER, _skbtracer_packet), PathCase("datapath", DATAPATH, _datapath_packet))
