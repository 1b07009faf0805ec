"""OVS datapath scenarios with known behaviour, each declaring its counts before it runs.

Runs in a lab guest.  Each scenario is a datapath of its own (``ovs-dpctl``,
no ovs-vswitchd), a source namespace that sends ``PACKETS`` ICMP echo
requests (static neighbour entry, IPv6 off: nothing else enters the
datapath) and a sink namespace that ignores them.  Flows carry UFIDs chosen
here, so per-flow counts (``ovs-dpctl dump-flows``) and the drop monitor's
flows meet on the same key.  What each scenario must produce follows from
``net/openvswitch/actions.c`` (limits named there):

* ``out``: one flow, ``2,clone(2),sample(sample=100%,actions(2))``: 3 outputs a packet.
* ``ct``: ``ct(zone=1),recirc(1)``, then on recirc_id 1 ``+trk+new`` outputs
  (an echo request never answered stays new), ``+trk+est`` sees nothing.
* ``drop``: an empty action list, the datapath's explicit drop (what OVS 3.1
  installs for ``actions=drop``; its ``OVS_ACTION_ATTR_DROP`` is numbered
  differently from the kernel's): the packet ends with its action list
  (``OVS_DROP_LAST_ACTION`` on 6.6+; ``consume_skb`` before).
* ``defer``: three nested ``clone()`` that are not last raise the level to 4
  (above ``OVS_DEFERRED_ACTION_THRESHOLD`` = 3): of the 11 clones inside, the
  last runs in place (a last clone keeps the key), 9 of the other 10 are
  deferred (``action_fifo_put`` keeps one of the 10 slots free) and 1 is dropped.
* ``recur``: ports chained through internal ports and macvlans on them (a
  qdisc on each macvlan, so ``dev_queue_xmit``'s own recursion count grows by
  one a level): each level's output re-enters the datapath on the same CPU,
  and the sixth ``ovs_execute_actions`` passes ``OVS_RECURSION_LIMIT`` (5).
* ``upcall``: no flow and no handler: every packet is missed, lost and freed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from . import ovs

PACKETS = 4
MATCH = "eth(),eth_type(0x0800),ipv4(proto=1,frag=no),icmp()"
SINK_MAC = "02:00:00:00:00:02"


@dataclass(frozen=True)
class Expected:
    """What a scenario's ``PACKETS`` packets must give, OVS's counters first."""

    flows: dict[str, int]  #: UFID -> packets (ovs-dpctl dump-flows)
    stats: ovs.Stats  #: ovs-dpctl show: lookups hit, missed, lost
    sink: int  #: packets sent into the sink namespace
    actions: dict[tuple[int, str], int]  #: (recirc_id, action type) -> actions executed
    drops: int
    drop_reason: str | None = None  #: the drops' reason, 6.6+ (ovs_drop_reason or core)
    drop_function: str | None = None  #: the function that frees them, before 6.6
    drop_ufid: str | None = None  #: the flow executing when they are dropped
    drop_port: str | None = None  #: the device the dropped packets entered by
    receives: dict[str, int] = field(default_factory=dict)  #: port -> ovs_vport_receive calls
    peak_level: int = 1
    deferred: int = 0
    deferred_drops: int = 0
    recursion_drops: int = 0


@dataclass
class Scenario:
    tag: str
    doc: str
    build: Callable[[Scenario], None]
    expected: Expected
    netns: list[str] = field(default_factory=list)  #: namespaces made (their veths go with them)
    links: list[str] = field(default_factory=list)  #: devices made in the root namespace

    @property
    def dp_name(self) -> str:
        return f"pov-{self.tag}"

    def ns(self, n: int) -> str:
        return f"pov{self.tag}{n}"

    def port(self, n: int) -> str:
        return f"{self.ns(n)}-br"

    def ufid(self, n: int) -> str:
        return ufid(self.tag, n)

    def setup(self) -> None:
        self.dp: ovs.Datapath | None = ovs.Datapath(self.dp_name)
        self.net = SUBNETS[self.tag]
        self.source, outside = ovs.quiet_netns_port(self.ns(1), f"{self.net}.1/24")
        self.netns.append(self.ns(1))
        self.dp.add_port(outside)
        self.source.run("ip", "neigh", "add", f"{self.net}.2", "lladdr", SINK_MAC,
                        "dev", f"{self.ns(1)}-in", "nud", "permanent")
        self.build(self)

    def add_sink(self) -> int:
        _, outside = ovs.quiet_netns_port(self.ns(2), f"{self.net}.2/24")
        self.netns.append(self.ns(2))
        return self.dp.add_port(outside)

    def flow(self, n: int, match: str, actions: str) -> None:
        self.dp.add_flow(f"ufid:{self.ufid(n)},{match}", actions)

    def send(self) -> None:
        done = self.source.run("ping", "-q", "-c", str(PACKETS), "-i", "0.05", "-W", "1",
                               f"{self.net}.2")
        if "transmitted" not in done.stdout:
            raise RuntimeError(f"{self.tag}: ping failed: {done.stdout}{done.stderr}")

    def teardown(self) -> None:
        """Remove the datapath, the devices and the namespaces (whatever of them was made)."""
        for link in reversed(self.links):  # macvlans first: their lower devices are the datapath's
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=60)
        if getattr(self, "dp", None) is not None:
            self.dp.delete()
        for netns in self.netns:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=60)


def ufid(tag: str, n: int) -> str:
    """A UFID of our own: the scenario's tag in the first word, the flow's number in the last."""
    word = int.from_bytes(tag.encode()[:4].ljust(4, b"\0"), "big")
    return f"{word:08x}-0000-0000-0000-{n:012x}"


def _flow(match: str, in_port: int = 1, recirc: str | None = None) -> str:
    prefix = f"recirc_id({recirc})," if recirc is not None else ""
    return f"{prefix}{match and match + ',' or ''}in_port({in_port}),{MATCH}"


def build_out(s: Scenario) -> None:
    sink = s.add_sink()
    s.flow(1, _flow(""), f"{sink},clone({sink}),sample(sample=100%,actions({sink}))")


def build_ct(s: Scenario) -> None:
    sink = s.add_sink()
    s.flow(1, _flow("", recirc="0"), "ct(zone=1),recirc(1)")
    s.flow(2, _flow("ct_state(+trk+new)", recirc="1"), str(sink))
    s.flow(3, _flow("ct_state(+trk+est)", recirc="1"), f"{sink},{sink}")


def build_drop(s: Scenario) -> None:
    s.add_sink()
    s.flow(1, _flow(""), "")


def build_defer(s: Scenario) -> None:
    sink = s.add_sink()
    inner = ",".join(f"clone(set(ipv4(ttl=6/0xff)),{sink})" for _ in range(11))
    cp = f"clone(set(ipv4(ttl=7/0xff)),{inner})"
    b = f"clone(set(ipv4(ttl=8/0xff)),{cp},{sink})"
    a = f"clone(set(ipv4(ttl=9/0xff)),{b},{sink})"
    s.flow(1, _flow(""), f"{a},{sink}")


def build_recur(s: Scenario) -> None:
    """Level k outputs to macvlan m(k+1), whose transmit enters internal port i(k+1)."""
    macvlans = {}
    for level in range(2, 7):
        internal, macvlan = f"povi{level}", f"povm{level}"
        s.links.append(macvlan)  # internal ports go with the datapath
        inner = s.dp.add_port(internal, internal=True)
        ovs.sh("ip", "link", "add", macvlan, "link", internal, "type", "macvlan", "mode", "vepa")
        ovs.sh("ip", "link", "set", macvlan, "txqueuelen", "1000")
        ovs.sh("tc", "qdisc", "replace", "dev", macvlan, "root", "pfifo_fast")
        ovs.quiet_link(macvlan)
        macvlans[level] = (inner, s.dp.add_port(macvlan))
    s.flow(1, _flow("", in_port=1), str(macvlans[2][1]))
    for level in range(2, 6):
        s.flow(level, _flow("", in_port=macvlans[level][0]), str(macvlans[level + 1][1]))
    s.flow(6, _flow("", in_port=macvlans[6][0]), "1")


def build_upcall(s: Scenario) -> None:
    s.add_sink()


N = PACKETS
SUBNETS = {"out": "10.81.0", "ct": "10.82.0", "drop": "10.83.0", "defer": "10.84.0",
           "recur": "10.85.0", "upcall": "10.86.0"}


def scenarios() -> list[Scenario]:
    """Every scenario, fresh (nothing is set up until :meth:`Scenario.setup`)."""
    return [
        Scenario("out", "several outputs, clone() and sample()", build_out, Expected(
            flows={ufid("out", 1): N}, stats=ovs.Stats(N, 0, 0), sink=3 * N,
            actions={(0, "OUTPUT"): 3 * N, (0, "CLONE"): N, (0, "SAMPLE"): N}, drops=0,
            receives={"povout1-br": N})),
        Scenario("ct", "ct with recirculation", build_ct, Expected(
            flows={ufid("ct", 1): N, ufid("ct", 2): N, ufid("ct", 3): 0},
            stats=ovs.Stats(2 * N, 0, 0), sink=N,
            actions={(0, "CT"): N, (0, "RECIRC"): N, (1, "OUTPUT"): N}, drops=0,
            receives={"povct1-br": N}, peak_level=2)),
        Scenario("drop", "an explicit drop: no actions", build_drop, Expected(
            flows={ufid("drop", 1): N}, stats=ovs.Stats(N, 0, 0), sink=0,
            actions={}, drops=N, drop_reason="LAST_ACTION",
            drop_function="do_execute_actions", drop_ufid=ufid("drop", 1), drop_port="povdrop1-br",
            receives={"povdrop1-br": N})),
        Scenario("defer", "nested clones past the deferral threshold and the FIFO", build_defer,
                 Expected(
            flows={ufid("defer", 1): N}, stats=ovs.Stats(N, 0, 0), sink=13 * N,
            actions={(0, "CLONE"): 14 * N, (0, "SET_MASKED"): 13 * N, (0, "OUTPUT"): 13 * N},
            drops=N, drop_reason="DEFERRED_LIMIT", drop_function="clone_execute",
            drop_ufid=ufid("defer", 1), drop_port="povdefer1-br", receives={"povdefer1-br": N}, peak_level=4,
            deferred=9 * N, deferred_drops=N)),
        Scenario("recur", "a chain of ports that nests the datapath past its limit", build_recur,
                 Expected(
            flows={ufid("recur", n): N for n in range(1, 7)}, stats=ovs.Stats(6 * N, 0, 0),
            sink=0, actions={(0, "OUTPUT"): 5 * N}, drops=N, drop_reason="RECURSION_LIMIT",
            drop_function="ovs_execute_actions", drop_ufid=ufid("recur", 6), drop_port="povi6",
            receives={"povrecur1-br": N, **{f"povi{k}": N for k in range(2, 7)}},
            peak_level=6, recursion_drops=N)),
        Scenario("upcall", "a miss with no upcall handler", build_upcall, Expected(
            flows={}, stats=ovs.Stats(0, N, N), sink=0, actions={}, drops=N,
            drop_reason="NOT_SPECIFIED", drop_function="ovs_dp_process_packet", drop_port="povupcall1-br",
            receives={"povupcall1-br": N}, peak_level=0)),
    ]
