"""The kernel side of ``pybpfasm defrag`` on kernels without function hooks (6.4+ with
netfilter links): what reaches IP defragmentation, what it drops, what it rebuilt.

* ``net:netif_receive_skb``: every IPv4/IPv6 fragment as it arrives (before defrag);
* ``skb:kfree_skb``: every fragment freed as a drop, with the kernel's reason, the
  function that freed it and whether the namespace's fragment memory was over
  ``ipfrag_high_thresh`` then (a fragment refused for memory is dropped without a reason);
* netfilter: IPv4 ``LOCAL_IN`` sees datagrams ``ip_local_deliver`` reassembled, IPv4/IPv6
  ``PRE_ROUTING`` just after ``NF_IP_PRI_CONNTRACK_DEFRAG`` those conntrack reassembled,
  and IPv6 ``LOCAL_IN`` the fragments bound for ``ipv6_frag_rcv`` (which runs after that hook).

A reassembled skb is told by ``frag_max_size`` in its control block (IPCB/IP6CB), which
only reassembly sets.  Filters (namespace, addresses, protocol, IP ID) are compiled in.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from pybpfasm.dsl import Events, ProgramDef, Record, be32, kernel_enum, u8, u16, u32, u64
from pybpfasm.link.netfilter import NF_ACCEPT

from .common.options import IPAddress
from .common.packet import ETH_P_IP, ETH_P_IPV6, F_IPV4, F_IPV6, address_cond
from .common.reasons import PREFIX, tracefs_reasons

#: FragEvent.kind
K_FRAGMENT, K_DROP, K_REASSEMBLED, K_LOCAL6 = 1, 2, 3, 4
#: FragEvent.user: the defrag user, as far as the hook knows it (OVS calls ip_defrag as
#: conntrack does: it shows as conntrack)
U_UNKNOWN, U_LOCAL, U_CONNTRACK = 0, 1, 2
#: FragEvent.flags: the namespace's fragment memory was over its high threshold; the
#: datagram's IP ID is unknown (IPv6 after conntrack removed the fragment header)
F_OVER, F_NO_ID = 1, 2
IP_MF, IP_OFFSET = 0x2000, 0x1FFF
IP6_MF, IP6_OFFSET = 0x0001, 0xFFF8
NEXTHDR_FRAGMENT = 44
#: how many priorities from the chosen one a netfilter program may take (others' BPF
#: programs, another defrag among them, may hold the first)
PRIORITIES = 16

Reason = kernel_enum("skb_drop_reason", u32, prefix=PREFIX, fallback=tracefs_reasons)


class FragEvent(Record):
    ALIGNMENT = 8
    ts: u64
    location: u64
    saddr: u8[16]
    daddr: u8[16]
    ident: u32
    netns: u32
    reason: Reason
    offset: u16
    length: u16
    kind: u8
    family: u8      # packet.F_IPV4 or packet.F_IPV6
    proto: u8
    more: u8
    user: u8
    flags: u8


events = Events(FragEvent, 1 << 22, name="defrag_events")


@dataclass(frozen=True)
class Options:
    """What the programs are built for (absent filters emit no code)."""

    src: IPAddress | None = None
    dst: IPAddress | None = None
    proto: int | None = None
    ident: int | None = None
    netns: int | None = None


def _keep_only(b, ev, opts: Options, ret: int, *, ident: bool = True) -> None:
    """Return *ret* unless the event passes every filter."""
    conds = []
    if opts.netns is not None:
        conds.append(ev.netns == opts.netns)
    if opts.src is not None:
        conds.append(address_cond(ev.saddr, ev.family, opts.src))
    if opts.dst is not None:
        conds.append(address_cond(ev.daddr, ev.family, opts.dst))
    if opts.proto is not None:
        conds.append(ev.proto == opts.proto)
    if opts.ident is not None and ident:
        conds.append(ev.ident == opts.ident)
    for cond in conds:
        with b.if_(~cond):
            b.return_(ret)


def _parse(b, l3, protocol, ev, ret: int) -> None:
    """Fill the fragment fields of *ev* from the IP header at *l3*; return *ret* unless
    the packet is a fragment (IPv4 MF or offset; IPv6 a fragment header right after the
    fixed header).  *protocol* is the skb's (host order) or, known when built, a Python int."""
    def family(value: int):
        return contextlib.nullcontext() if isinstance(protocol, int) else b.if_(protocol == value)

    if not isinstance(protocol, int) or protocol == ETH_P_IP:
        with family(ETH_P_IP):
            _parse4(b, l3, ev, ret)
    if not isinstance(protocol, int) or protocol == ETH_P_IPV6:
        with family(ETH_P_IPV6):
            _parse6(b, l3, ev, ret)
    with b.if_(ev.family == 0):
        b.return_(ret)


def _parse4(b, l3, ev, ret: int) -> None:
    """An IPv4 fragment's fields (return *ret* if it is whole)."""
    ip = b.read(l3.cast("struct iphdr").deref(), name="ip header")
    frag = b.var(ip.frag_off.to_host())
    with b.if_((frag & (IP_MF | IP_OFFSET)) == 0):
        b.return_(ret)
    ev.family = F_IPV4
    ev.proto = ip.protocol
    ev.ident = ip.id.to_host()
    ev.offset = (frag & IP_OFFSET) * 8
    ev.length = ip.tot_len.to_host() - ip.ihl * 4
    with b.if_(frag.test(IP_MF)):
        ev.more = 1
    ev.saddr.view(be32).store(ip.saddr)  # raw network-order bytes
    ev.daddr.view(be32).store(ip.daddr)


def _parse6(b, l3, ev, ret: int) -> None:
    """An IPv6 fragment's fields (return *ret* without a fragment header)."""
    ip6 = b.read(l3.cast("struct ipv6hdr").deref(), name="ipv6 header")
    with b.if_(ip6.nexthdr != NEXTHDR_FRAGMENT):
        b.return_(ret)
    fh = b.read(l3.at(40).cast("struct frag_hdr").deref(), name="fragment header")
    frag = b.var(fh.frag_off.to_host())
    ev.family = F_IPV6
    ev.proto = fh.nexthdr
    ev.ident = fh.identification.to_host()
    ev.offset = frag & IP6_OFFSET
    ev.length = ip6.payload_len.to_host() - 8
    with b.if_(frag.test(IP6_MF)):
        ev.more = 1
    ev.saddr = ip6.saddr
    ev.daddr = ip6.daddr


def _fragment(b, ctx_value, skb_ptr, kind: int, opts: Options, location=None, reason=None) -> None:
    """A fragment's event (arrival or drop) from an skb whose network header is set."""
    ev = b.stack(FragEvent, "the fragment event")
    b.zero(ev)
    skb_ref = skb_ptr.cast("struct sk_buff").deref()
    skb = b.read(skb_ref, "dev", "protocol", "network_header", "head", name="sk_buff fields")
    protocol = b.var(skb.protocol.to_host())
    with b.if_(~protocol.in_(ETH_P_IP, ETH_P_IPV6)):
        b.return_(0)
    with b.if_(skb.dev != 0):  # queued fragments have none: their tree node shares its place
        dev = b.read(skb.dev.deref(), "nd_net", name="net_device")
        ev.netns = dev.nd_net.net.ns.inum
    _parse(b, skb.head.rvalue().at(skb.network_header), protocol, ev, 0)
    if opts.netns is not None:  # a drop without a device may still be this namespace's
        with b.if_(ev.netns == 0):
            ev.netns = opts.netns
    _keep_only(b, ev, opts, 0)
    ev.kind = kind
    ev.ts = b.ktime_get_ns()
    if reason is not None:
        ev.reason = reason
        ev.location = location
        with b.if_(skb.dev != 0):
            _memory_pressure(b, skb.dev, ev)
    events.output(b, ctx_value, ev)


def _memory_pressure(b, dev_ptr, ev) -> None:
    """Set F_OVER when the device's namespace holds more fragment memory than its
    ``ipfrag_high_thresh`` (``ip6frag_high_thresh``): ``inet_frag_find`` then refuses
    every fragment."""
    net = b.read(dev_ptr.deref(), "nd_net", name="net_device").nd_net.net
    with b.if_(ev.family == F_IPV4):
        _over(b, net.ipv4.fqdir, ev)
    with b.else_():
        _over(b, net.ipv6.fqdir, ev)


def _over(b, fqdir_ptr, ev) -> None:
    with b.if_(fqdir_ptr != 0):
        fq = b.read(fqdir_ptr.deref(), "high_thresh", "mem", name="fqdir")
        with b.if_(fq.mem.counter > fq.high_thresh):
            ev.flags = F_OVER


def on_receive(b, ctx, opts: Options):
    _fragment(b, ctx.value, ctx.arg(0), K_FRAGMENT, opts)


def on_kfree_skb(b, ctx, opts: Options):
    reason = ctx.arg(2) if "reason" in ctx.names else None
    _fragment(b, ctx.value, ctx.arg(0), K_DROP, opts, ctx.arg(1), reason)


def _netfilter(kind: int, family: str, user: int, untracked_only: bool = False):
    """The body of a netfilter program: an event for each reassembled datagram (or, with
    ``kind=K_LOCAL6``, each IPv6 fragment) at its hook; every verdict is NF_ACCEPT."""

    def body(b, ctx, opts: Options):
        skb_ptr = ctx.skb.rvalue()
        skb_ref = skb_ptr.cast("struct sk_buff").deref()
        skb = b.read(skb_ref, "network_header", "head", name="sk_buff fields")
        cb = "struct inet_skb_parm" if family == "ipv4" else "struct inet6_skb_parm"
        parm = b.read(skb_ref.cb.addr().cast(cb).deref(), name="control block")
        if kind == K_REASSEMBLED:
            with b.if_(parm.frag_max_size == 0):
                b.return_(NF_ACCEPT)
        if untracked_only:  # conntrack reassembled it: the PRE_ROUTING program said so
            nfct = b.read(skb_ref, "_nfct", name="conntrack pointer")
            with b.if_(nfct._nfct != 0):
                b.return_(NF_ACCEPT)
        ev = b.stack(FragEvent, "the datagram event")
        b.zero(ev)
        state = b.read(ctx.state.rvalue().deref(), "net", name="nf_hook_state")
        ev.netns = state.net.ns.inum
        l3 = skb.head.rvalue().at(skb.network_header)
        if kind == K_LOCAL6:
            _parse(b, l3, ETH_P_IPV6, ev, NF_ACCEPT)
            with b.if_(state.net != 0):
                _over(b, state.net.ipv6.fqdir, ev)
        elif family == "ipv4":
            ip = b.read(l3.cast("struct iphdr").deref(), name="ip header")
            ev.family = F_IPV4
            ev.proto = ip.protocol
            ev.ident = ip.id.to_host()
            ev.length = ip.tot_len.to_host() - ip.ihl * 4
            ev.saddr.view(be32).store(ip.saddr)  # raw network-order bytes
            ev.daddr.view(be32).store(ip.daddr)
        else:  # the fragment header is gone, and with it the identification
            ip6 = b.read(l3.cast("struct ipv6hdr").deref(), name="ipv6 header")
            ev.flags = F_NO_ID
            ev.family = F_IPV6
            ev.proto = ip6.nexthdr
            ev.length = ip6.payload_len.to_host()
            ev.saddr = ip6.saddr
            ev.daddr = ip6.daddr
        _keep_only(b, ev, opts, NF_ACCEPT, ident=family == "ipv4" or kind == K_LOCAL6)
        ev.kind = kind
        ev.user = user
        ev.ts = b.ktime_get_ns()
        events.output(b, ctx.value, ev)
        b.return_(NF_ACCEPT)

    body.__qualname__ = f"defrag_nf[{family},{kind},{user}]"
    return body


def netfilter_programs(priority_after_defrag: dict[str, int], local_in: int) -> list[ProgramDef]:
    """The netfilter programs, each with where it attaches (its namespace is added later)."""
    def pdef(name: str, kind: int, family: str, user: int, hook: str, priority: int,
             untracked_only: bool = False) -> ProgramDef:
        return ProgramDef(_netfilter(kind, family, user, untracked_only), "netfilter", name=name,
                          where={"family": family, "hook": hook,
                                 "priority": range(priority, priority + PRIORITIES)})

    return [
        pdef("dfg_local4", K_REASSEMBLED, "ipv4", U_LOCAL, "local_in", local_in, untracked_only=True),
        pdef("dfg_ct4", K_REASSEMBLED, "ipv4", U_CONNTRACK, "pre_routing", priority_after_defrag["ipv4"]),
        pdef("dfg_ct6", K_REASSEMBLED, "ipv6", U_CONNTRACK, "pre_routing", priority_after_defrag["ipv6"]),
        pdef("dfg_local6", K_LOCAL6, "ipv6", U_LOCAL, "local_in", local_in),
    ]


receive = ProgramDef(on_receive, "raw_tracepoint", ("netif_receive_skb",), name="dfg_receive")
drop = ProgramDef(on_kfree_skb, "raw_tracepoint", ("kfree_skb",), name="dfg_kfree_skb")

