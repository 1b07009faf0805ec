"""netmon's kernel side: every drop is counted in kernel maps, nothing is sent per drop.

Each ``kfree_skb`` is classified into the original netmon's packet-type columns (a bit
mask, :data:`COLUMNS`) and added to three maps: the drop's key under the chosen sort
(:class:`DropKey` -> :class:`Counts`), its place (location, reason, interface, namespace)
and the per-CPU totals (drops, unix-socket drops, by ``pkt_type``, and what did not fit).
A key or place that finds its map full is counted in :class:`Totals`, never lost silently.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from pybpfasm.dsl import (
    ArrayMap,
    Events,
    HashMap,
    PerCPUArray,
    ProgramDef,
    Record,
    UnknownName,
    char,
    kernel_enum,
    s32,
    u8,
    u16,
    u32,
    u64,
)
from pybpfasm.dsl.maps import atomic_add

from .common import packet
from .common.hooks import Hook
from .common.packet import F_IPV4, F_IPV6, F_MAC, Packet
from .common.reasons import PREFIX, tracefs_reasons

Reason = kernel_enum("skb_drop_reason", u32, prefix=PREFIX, fallback=tracefs_reasons)

#: the original's packet-type columns: (JSON key, text heading), in its order
COLUMNS: tuple[tuple[str, str], ...] = (
    ("lldp", "LLDP"), ("arp", "ARP"), ("arp_req", "ARP req"), ("arp_reply", "ARP reply"),
    ("arp_other", "ARP other"), ("ipv4", "IPv4"), ("ipv6", "IPv6"), ("tcp", "TCP"),
    ("tcp_syn", "TCP syn"), ("tcp_reset", "TCP reset"), ("tcp_fin", "TCP fin"), ("udp", "UDP"),
    ("vrrp", "VRRP"), ("other", "other"),
)
#: skb->pkt_type values (uapi if_packet.h PACKET_*), named as the original names them
PKT_TYPES = ("this-host", "broadcast", "multicast", "other-host", "outgoing", "loopback",
             "to-user", "to-kernel")
PACKET_HOST = 0
ETH_P_ARP, ETH_P_LLDP = 0x0806, 0x88CC
ARPOP_REQUEST, ARPOP_REPLY = 1, 2
IPPROTO_VRRP = 112
#: plain ints (an IntEnum is not a plain int to the eDSL's immediate check)
AF_UNIX, IPPROTO_TCP, IPPROTO_UDP = int(socket.AF_UNIX), int(socket.IPPROTO_TCP), int(socket.IPPROTO_UDP)
TCP_FIN, TCP_SYN, TCP_RST = 1, 2, 4
EEXIST = 17
BPF_NOEXIST = 1

#: sort keys: what DropKey holds for each
SORTS = {
    "netns": "network namespace", "dmac": "destination mac", "smac": "source mac",
    "dip": "destination ip", "sip": "source ip", "flow": "destination ip and flow",
    "flow-src": "source ip and flow", "reason": "drop reason", "ifname": "interface",
}
MAX_KEYS = 10240
MAX_PLACES = 4096


class DropKey(Record):
    """A drop's key under the sort: ``subject`` is the MAC, address, flow source or interface
    name, ``peer`` a flow's destination, ``n`` the namespace inode or reason; ``family`` 4/6 for IP keys."""

    subject: u8[16]
    peer: u8[16]
    sport: u16
    dport: u16
    n: u32
    family: u8
    proto: u8


class Counts(Record):
    cols: u64[len(COLUMNS)]
    total: u64


class Place(Record):
    """Where and why: each place's count gives the location, reason and metric tables."""

    location: u64
    ifname: char[16]
    reason: Reason
    netns: u32


class Totals(Record):
    drops: u64
    unix: u64
    full_keys: u64
    full_places: u64
    full_xdp: u64
    pkt_types: u64[len(PKT_TYPES)]


class XdpKey(Record):
    """An XDP-layer drop: which tracepoint, where, and its action or error and target."""

    ifname: char[16]
    netns: u32
    act: u32
    err: s32
    #: the redirect's target: an ifindex, or the map slot of a map redirect
    target: s32
    event: u8


keys = HashMap(DropKey, Counts, MAX_KEYS, name="nm_keys")
xdp_drops = HashMap(XdpKey, u64, 1024, name="nm_xdp")
places = HashMap(Place, u64, MAX_PLACES, name="nm_places")
totals = PerCPUArray(Totals, 1, name="nm_totals")
#: a new key's counts: zeros, inserted from this map (not from 120 bytes of stack)
zeros = ArrayMap(Counts, 1, name="nm_zero")


@dataclass(frozen=True)
class Options:
    """What the program is built for."""

    sort: str = "netns"
    skip_tcp: bool = False
    skip_unix: bool = False
    #: [start, end) of queue_userspace_packet, and whether only (True) or none (False) of it
    ovs: tuple[int, int, bool] | None = None
    #: only drops in these network namespaces (inodes; empty: all)
    netns: tuple[int, ...] = ()
    #: only drops on this device (-i DEV)
    ifname: bytes | None = None
    #: netmon pcap: bytes of each dropped packet to capture (0: no capture)
    snaplen: int = 0
    hook: str = "auto"


def upsert(b, table, key, zero) -> object:
    """A pointer to *key*'s value in *table* (inserted as *zero* when absent), 0 when the map is full."""
    ptr = b.var(table.lookup_ptr(b, key))
    with b.if_(ptr == 0):
        ret = table.update(b, key, zero, BPF_NOEXIST)
        with b.if_(ret == 0):
            ptr.set(table.lookup_ptr(b, key))
        with b.if_(ret == -EEXIST):  # another CPU inserted it first
            ptr.set(table.lookup_ptr(b, key))
    return ptr


#: "no column" for a class index (the index is then not counted)
NONE = len(COLUMNS)
IDX = {key: i for i, (key, _) in enumerate(COLUMNS)}


def classify(b, skb, protocol, pkt) -> tuple:
    """The packet-type columns a drop counts in, as the original counts them: its link or
    network class, then an ARP op or transport, then a TCP flag (:data:`NONE`: no column).
    Indices, not a bit mask tested per column: fewer branches for the verifier to walk."""
    net, sub, flag = b.var(IDX["other"], u32), b.var(NONE, u32), b.var(NONE, u32)
    with b.if_(protocol == ETH_P_ARP):
        arp = b.read(skb.head.rvalue().at(skb.network_header).cast("struct arphdr").deref(), "ar_op",
                     name="arp header")
        op = arp.ar_op.to_host()
        net.set(IDX["arp"])
        sub.set(IDX["arp_other"])
        with b.if_(op == ARPOP_REQUEST):
            sub.set(IDX["arp_req"])
        with b.if_(op == ARPOP_REPLY):
            sub.set(IDX["arp_reply"])
    with b.if_(protocol == ETH_P_LLDP):
        net.set(IDX["lldp"])
    with b.if_(pkt.flags.test(F_IPV4 | F_IPV6)):
        net.set(IDX["ipv6"])
        with b.if_(pkt.flags.test(F_IPV4)):
            net.set(IDX["ipv4"])
        with b.if_(pkt.proto == IPPROTO_UDP):
            sub.set(IDX["udp"])
        with b.if_(pkt.proto == IPPROTO_VRRP):
            sub.set(IDX["vrrp"])
        with b.if_(pkt.proto == IPPROTO_TCP):
            sub.set(IDX["tcp"])
            flags = pkt.tcp_flags  # 0 unless the TCP header was read
            with b.if_(flags.test(TCP_SYN)):
                flag.set(IDX["tcp_syn"])
            with b.if_(flags.test(TCP_RST)):
                flag.set(IDX["tcp_reset"])
            with b.if_(flags.test(TCP_FIN)):
                flag.set(IDX["tcp_fin"])
    return net, sub, flag


def add_at(b, array, index) -> None:
    """Atomically add 1 to ``array[index]`` (a u64 array in a map value; *index* bounded here)."""
    slot = array.addr().at((index & 15) * 8).cast(u64).deref()
    atomic_add(b, slot, 1)


def fill_key(b, key, pkt, netns, ifname, reason, sort: str) -> None:
    """*key* for the sort; a packet without what the sort needs returns (counted in the totals only)."""
    if sort == "netns":
        key.n = netns
        return
    if sort == "ifname":
        b.copy(key.subject, ifname)
        return
    if sort == "reason":
        if reason is not None:
            key.n = reason
        return
    if sort in ("dmac", "smac"):
        with b.if_(~pkt.flags.test(F_MAC)):
            b.return_(0)
        b.copy(key.subject.view(u8[6]), pkt.dmac if sort == "dmac" else pkt.smac)
        return
    with b.if_(~pkt.flags.test(F_IPV4 | F_IPV6)):
        b.return_(0)
    key.family = 6
    with b.if_(pkt.flags.test(F_IPV4)):
        key.family = 4
    if sort in ("dip", "sip"):
        b.copy(key.subject, pkt.daddr if sort == "dip" else pkt.saddr)
        return
    b.copy(key.subject, pkt.saddr)
    b.copy(key.peer, pkt.daddr)
    key.proto = pkt.proto
    key.sport = pkt.sport.to_host()
    key.dport = pkt.dport.to_host()


#: the most bytes of a packet ``netmon pcap`` captures (-l)
SNAP_MAX = 512
NO_HEADER = 0xFFFF


class Captured(Record):
    """A dropped packet's first bytes, from its MAC header (``mac`` 1) or its network header."""

    ts: u64
    location: u64
    wire_len: u32
    reason: Reason
    netns: u32
    ifname: char[16]
    mac: u8
    data: u8[SNAP_MAX]


captures = Events(Captured, 4 << 20, name="nm_capture")


def capture(b, skb_ref, skb, where, reason, ctx_value, snaplen: int) -> None:
    """Send the first *snaplen* bytes of the dropped packet (from its MAC header when it has one)."""
    more = b.read(skb_ref, "len", "data", name="sk_buff length")
    start = b.var(skb.head.rvalue() + skb.network_header)
    mac = b.var(0, u32)
    with b.if_(skb.mac_header != NO_HEADER):
        start.set(skb.head.rvalue() + skb.mac_header)
        mac.set(1)
    with captures.reserve(b, ctx_value) as ev:
        ev.ts = b.ktime_get_ns()
        ev.location = where.location
        ev.netns = where.netns
        ev.ifname = where.ifname
        ev.mac = mac
        if reason is not None:
            ev.reason = reason
        ev.wire_len = more.len + (more.data.rvalue() - start)
        b.probe_read(ev.data, start.cast(u8[snaplen]).deref(), snaplen)


def count_drop(b, skb_ptr, protocol, reason, location, opts: Options, ctx_value=None) -> None:
    """The program's body, whatever the hook."""
    if opts.ovs is not None:
        start, end, only = opts.ovs
        inside = (location >= start) & (location < end)
        with b.if_(~inside if only else inside):
            b.return_(0)
    skb_ref = skb_ptr.cast("struct sk_buff").deref()
    skb = b.read(skb_ref, "dev", "sk", "pkt_type", *packet.vlan_fields(b), "vlan_tci",
                 "network_header", "mac_header", "head", name="sk_buff fields")
    pkt_type = b.var(skb.pkt_type.rvalue() & 7, u32)
    unix = b.var(0, u32)
    with b.if_(skb.sk != 0), b.if_(skb.sk.__sk_common.skc_family == AF_UNIX):
        unix.set(1)
    if opts.skip_unix:
        with b.if_(unix != 0):
            b.return_(0)
    where = b.stack(Place, "the drop's place")
    b.zero(where)
    where.location = location
    with b.if_(skb.dev != 0):
        dev = b.read(skb.dev.deref(), "nd_net", "name", name="net_device fields")
        where.ifname = dev.name
        where.netns = dev.nd_net.net.ns.inum
    with b.if_((where.netns == 0) & (skb.sk != 0)):  # no device: the socket's namespace
        where.netns = skb.sk.__sk_common.skc_net.net.ns.inum
    if opts.netns:
        with b.if_(~where.netns.in_(*opts.netns)):
            b.return_(0)
    if opts.ifname is not None:
        with b.if_(~packet.bytes_cond(where.ifname, opts.ifname)):
            b.return_(0)
    if opts.snaplen:
        capture(b, skb_ref, skb, where, reason, ctx_value, opts.snaplen)
    pkt = b.stack(Packet, "the packet")
    b.zero(pkt)
    packet.parse(b, skb, protocol, pkt, mac=True)
    if opts.skip_tcp:
        with b.if_(pkt.flags.test(F_IPV4 | F_IPV6) & (pkt.proto == IPPROTO_TCP) & (pkt_type == PACKET_HOST)):
            b.return_(0)
    total = totals.lookup_ptr(b, 0)
    with b.if_(total == 0):
        b.return_(0)
    tot = total.non_null().deref()
    atomic_add(b, tot.drops, 1)
    add_at(b, tot.pkt_types, pkt_type)
    if reason is not None:
        where.reason = reason
    place = upsert(b, places, where, 0)
    with b.if_(place == 0):
        atomic_add(b, tot.full_places, 1)
    with b.else_():
        atomic_add(b, place.non_null().deref(), 1)
    with b.if_(unix != 0):
        atomic_add(b, tot.unix, 1)
        b.return_(0)  # the original leaves unix-socket drops out of the key table
    columns = classify(b, skb, protocol, pkt)
    key = b.stack(DropKey, "the drop's key")
    b.zero(key)
    fill_key(b, key, pkt, where.netns, where.ifname, where.reason if reason is not None else None, opts.sort)
    zero = zeros.lookup_ptr(b, 0)
    with b.if_(zero == 0):
        b.return_(0)
    ptr = upsert(b, keys, key, zero.non_null().deref())
    with b.if_(ptr == 0):
        atomic_add(b, tot.full_keys, 1)
        b.return_(0)
    counts = ptr.non_null().deref()
    atomic_add(b, counts.total, 1)
    for index in columns:
        with b.if_(index != NONE):
            add_at(b, counts.cols, index)


def on_kfree_skb_raw(b, ctx, opts: Options):
    """``kfree_skb(skb, location[, reason[, rx_sk]])`` as the kernel passes them."""
    skb = ctx.arg(0)
    reason = ctx.arg(2) if "reason" in ctx.names else None
    count_drop(b, skb, skb.cast("struct sk_buff").protocol.to_host(), reason, ctx.arg(1), opts, ctx.value)


def on_kfree_skb_tp(b, ctx, opts: Options):
    reason = ctx.reason if ctx.has_field("reason") else None
    count_drop(b, ctx.skbaddr.rvalue(), ctx.protocol, reason, ctx.location, opts, ctx.value)


drop_hook = Hook(
    ProgramDef(on_kfree_skb_raw, "raw_tracepoint", ("kfree_skb",), name="nm_kfree_skb"),
    ProgramDef(on_kfree_skb_tp, "tracepoint", ("skb", "kfree_skb"), name="nm_kfree_skb"),
)


#: the XDP layer's drop tracepoints, each its own rows (its index is XdpKey.event)
XDP_EVENTS = ("xdp_exception", "xdp_redirect_err", "xdp_redirect_map_err")
XDP_REDIRECT = 4


def xdp_program(event: str) -> ProgramDef:
    """A raw tracepoint counting *event* by device, namespace and action or error."""

    def on_xdp(b, ctx, opts: Options):
        # (dev, prog, act) and (dev, prog, target, err, ..., index): the index is last on every kernel
        dev = b.read(ctx.arg(0).cast("struct net_device").deref(), "nd_net", "name", name="net_device fields")
        key = b.stack(XdpKey, "the xdp key")
        b.zero(key)
        key.ifname = dev.name
        key.netns = dev.nd_net.net.ns.inum
        if opts.netns:
            with b.if_(~key.netns.in_(*opts.netns)):
                b.return_(0)
        key.event = XDP_EVENTS.index(event)
        if event == "xdp_exception":
            key.act = ctx.arg(2)
        else:
            key.act = XDP_REDIRECT
            if not ctx.names:
                raise UnknownName(f"no BTF prototype for raw tracepoint {event}: its arguments are unknown")
            key.err = ctx.arg(3)
            key.target = ctx.arg(len(ctx.names) - 1)
        total = totals.lookup_ptr(b, 0)
        with b.if_(total == 0):
            b.return_(0)
        count = upsert(b, xdp_drops, key, 0)
        with b.if_(count == 0):
            atomic_add(b, total.non_null().deref().full_xdp, 1)
        with b.else_():
            atomic_add(b, count.non_null().deref(), 1)

    on_xdp.__qualname__ = f"on_xdp[{event}]"
    return ProgramDef(on_xdp, "raw_tracepoint", (event,), name=f"nm_{event}"[:15])


XDP_PROGRAMS = [xdp_program(e) for e in XDP_EVENTS]
