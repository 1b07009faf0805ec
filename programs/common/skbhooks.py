"""Where an skb can be seen without kprobes, and one program body for all of those places.

::

    class MyEvent(SkbEvent): ...                       # or SkbEvent itself
    programs = [skb_program(hook, body) for hook in HOOKS]   # tp_btf, raw tp or tracepoint
    def body(b, ctx_value, skb_ptr, hook, reason, opts):
        ev = capture(b, skb_ptr, hook, reason, opts.filter)  # returns early if filtered out
        ...

:data:`HOOKS` are the kernel's skb tracepoints, each a *hop* of a packet's path
(``rx``, ``tx``, ``drop``, ``free``); each is hooked as a raw tracepoint where the
kernel has BTF (arguments as passed, no trace buffer), else the tracepoint; tp_btf
(direct skb loads) on request only: its links are released through RCU-tasks grace
periods (measured on 6.18 under load: programs still loaded 20-27 s after a SIGKILL,
1.4 s to close on a clean exit; raw tracepoints: under 0.1 s).  :func:`capture` reads the skb once and builds an :class:`SkbEvent`
only for a packet that passes :class:`SkbFilter`: a filter not asked for emits no
code, and the cheapest tests (device, namespace, mark) come before the headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pybpfasm.dsl import ProgramDef, Record, char, s32, u8, u32, u64

from . import packet
from .hooks import Hook
from .packet import Packet, PacketFilter, bytes_cond
from .reasons import reason_enum

Reason = reason_enum()
#: SkbEvent.flags bits: a drop reason was recorded; a kept skb (``--keep``); the device
#: is a bridge port (:func:`capture` with ``bridge_port=True``)
F_REASON, F_KEPT, F_BRIDGE_PORT = 1, 2, 4


@dataclass(frozen=True)
class SkbHook:
    """An skb tracepoint: its category and event, and the hop of a packet's path it marks."""

    category: str
    event: str
    hop: str

    @property
    def name(self) -> str:
        return self.event


#: the skb tracepoints, in the order a packet meets them on a veth pair (sender's queue and
#: start of transmission, the peer's netif_rx, the sender's completed transmission, the
#: peer's receive), then the ends of an skb's life
HOOKS: tuple[SkbHook, ...] = (
    SkbHook("net", "net_dev_queue", "tx"),
    SkbHook("net", "net_dev_start_xmit", "tx"),
    SkbHook("net", "netif_rx", "rx"),
    SkbHook("net", "net_dev_xmit", "tx"),
    SkbHook("net", "napi_gro_receive_entry", "rx"),
    SkbHook("net", "netif_receive_skb", "rx"),
    SkbHook("skb", "kfree_skb", "drop"),
    SkbHook("skb", "consume_skb", "free"),
)
HOOK_NAMES: tuple[str, ...] = tuple(h.name for h in HOOKS)
#: the hooks after which an skb is gone (its per-skb state is forgotten there)
END_HOOKS = frozenset(i for i, h in enumerate(HOOKS) if h.hop in ("drop", "free"))


class SkbEvent(Record):
    """One skb seen at one hook."""

    ts: u64
    skb: u64
    pkt: Packet
    ifname: char[16]
    netns: u32
    ifindex: u32
    mark: u32
    pid: u32
    cpu: u32
    reason: Reason
    kstack: s32
    #: the skb's length (skb->len)
    len: u32
    hook: u8
    pkt_type: u8
    flags: u8


@dataclass(frozen=True)
class SkbFilter:
    """What a traced skb must be; absent parts emit no code."""

    packet: PacketFilter = field(default_factory=PacketFilter)
    netns: int | None = None
    ifname: bytes | None = None
    mark: int | None = None
    pid: int | None = None
    #: a compiled pcap-filter expression (:mod:`pybpfasm.pcapfilter`)
    expr: Any = None
    #: IP packets only (non-IP frames are never reported)
    ip_only: bool = True

    @property
    def packet_conditions(self) -> bool:
        return self.packet != PacketFilter() or self.expr is not None


def _return_unless(b, conds: list) -> None:
    for c in conds:
        with b.if_(~c):
            b.return_(0)


def _netns_of(b, ev, net) -> None:
    """``ev.netns`` from a ``struct net *`` (null-checked: an RCU pointer under tp_btf)."""
    net = b.var(net)
    with b.if_(net != 0):
        ev.netns = net.deref().ns.inum


def _device(b, ev, hdr, bridge_port: bool) -> None:
    """The event's device, namespace and mark (and whether the device is a bridge port)."""
    dev_ptr = b.var(hdr.dev)
    with b.if_(dev_ptr != 0):
        dev = b.read(dev_ptr.cast("struct net_device").deref(), "name", "ifindex", "nd_net",
                     *(["priv_flags"] if bridge_port else []), name="net_device fields")
        if bridge_port:
            port = b.btf.enum("netdev_priv_flags")["IFF_BRIDGE_PORT"]
            with b.if_(dev.priv_flags.test(port)):
                ev.flags = ev.flags | F_BRIDGE_PORT
        ev.ifname = dev.name
        ev.ifindex = dev.ifindex
        _netns_of(b, ev, dev.nd_net.net)
    with b.if_(ev.netns == 0):  # no device yet: the socket's namespace
        sk = b.var(hdr.sk)
        with b.if_(sk != 0):
            _netns_of(b, ev, sk.deref().__sk_common.skc_net.net)
    ev.mark = hdr.mark


def _addresses_first(b, skb_ref, pf: PacketFilter) -> None:
    """Return early unless the packet's addresses can match *pf*'s (two small reads, the
    skb's protocol and header offset and the IP addresses, before the whole skb and the
    parse): a packet of the other family returns at once, a VLAN-tagged one is left to the
    full parse."""
    from pybpfasm.dsl import u32, u64

    wanted = [(k, a) for k, a in (("host", pf.host), ("src", pf.src), ("dst", pf.dst)) if a is not None]
    if not wanted or len({a.version for _, a in wanted}) != 1:
        return
    from pybpfasm.dsl.types import Space

    # the skb in its own space (tp_btf, fentry: direct loads), the packet with a probe read
    hdr = b.read(skb_ref, "protocol", "network_header", "head", name="sk_buff network fields")
    v4 = wanted[0][1].version == 4
    ethertype = packet.ETH_P_IP if v4 else packet.ETH_P_IPV6
    proto = b.var(hdr.protocol.to_host())
    with b.if_(~proto.in_(ethertype, packet.ETH_P_8021Q, packet.ETH_P_8021AD)):
        b.return_(0)  # another family: no address of this one
    with b.if_(proto == ethertype):
        l3 = hdr.head.rvalue().at(hdr.network_header)
        ip = b.read(l3.cast("struct iphdr" if v4 else "struct ipv6hdr", Space.KERNEL).deref(), "saddr", "daddr",
                    name="ip addresses")

        def same(field, addr):
            raw = addr.packed
            if v4:
                return field.view(u32) == packet.host_word(raw)
            return (field.view(u64) == packet.host_word(raw[:8])) & (field.view(u64, 8) == packet.host_word(raw[8:]))

        for kind, addr in wanted:
            if kind == "src":
                cond = same(ip.saddr, addr)
            elif kind == "dst":
                cond = same(ip.daddr, addr)
            else:
                cond = same(ip.saddr, addr) | same(ip.daddr, addr)
            with b.if_(~cond):
                b.return_(0)


def capture(b, skb_ptr, hook: int, reason, filt: SkbFilter, *, passes: Callable | None = None,
            bridge_port: bool = False, into=None, prefilter: bool = True):
    """An :class:`SkbEvent` on the stack for an skb at *hook* that passes *filt*, else return.

    *passes* (``passes(b, hdr) -> Cond``, *hdr* the skb's fields) may let an skb through the packet filter anyway
    (``--keep``: an skb once matched is followed through header changes); it is evaluated
    only after the device filters.  With *bridge_port*, ``F_BRIDGE_PORT`` says whether the
    device is a bridge port (``IFF_BRIDGE_PORT``, from the kernel's BTF).  *into* is an
    SkbEvent field of a larger record on the stack to fill (default: a stack SkbEvent of its own).
    *prefilter* tests address filters first, from two small reads (more stack: a program
    whose own records are large turns it off).
    """
    from pybpfasm.dsl.types import Space

    ev = b.stack(SkbEvent, "the skb event") if into is None else into
    # kernel memory, read with probe reads whatever the hook (typed BTF pointers of fentry and
    # tp_btf load their pointer-to-char fields as scalars before 6.x's verifiers)
    skb_ref = skb_ptr.cast("struct sk_buff", Space.KERNEL).deref()
    device = []
    early = filt.netns is not None or filt.ifname is not None or filt.mark is not None
    if prefilter and not early and passes is None:  # most packets fail an address filter: test it first
        _addresses_first(b, skb_ptr.cast("struct sk_buff").deref(), filt.packet)
    hdr = packet.read_skb(b, skb_ref, "dev", "sk", "mark", "len", "protocol", "pkt_type", mac=True)
    b.zero(ev)
    if early:  # device filters are the cheapest: first
        _device(b, ev, hdr, bridge_port)
    if filt.netns is not None:
        device.append(ev.netns == filt.netns)
    if filt.ifname is not None:
        device.append(bytes_cond(ev.ifname, filt.ifname))
    if filt.mark is not None:
        device.append(ev.mark == filt.mark)
    _return_unless(b, device)
    if filt.pid is not None:
        ev.pid = b.get_current_pid_tgid() >> 32
        _return_unless(b, [ev.pid == filt.pid])
    kept = passes(b, hdr) if passes is not None else None
    if filt.expr is not None and kept is None:  # reads the frame itself: before the parse
        _return_unless(b, [filt.expr.matches_skb(b, skb_ptr)])
    packet.parse(b, hdr, hdr.protocol.to_host(), ev.pkt, mac=True)
    conds = filt.packet.conditions(ev.pkt)
    if filt.ip_only:
        conds.insert(0, ev.pkt.flags.test(packet.F_IPV4 | packet.F_IPV6))
    if filt.expr is not None and kept is not None:
        conds.append(filt.expr.matches_skb(b, skb_ptr))
    if kept is not None and conds:
        with b.if_(kept):
            ev.flags = ev.flags | F_KEPT
        for c in conds:
            with b.if_(~c & ~ev.flags.test(F_KEPT)):
                b.return_(0)
    else:
        _return_unless(b, conds)
    if not early:
        _device(b, ev, hdr, bridge_port)
    ev.ts = b.ktime_get_ns()
    ev.skb = skb_ptr
    ev.hook = hook
    ev.len = hdr.len
    ev.pkt_type = hdr.pkt_type
    ev.cpu = b.get_smp_processor_id()
    if filt.pid is None:
        ev.pid = b.get_current_pid_tgid() >> 32
    if reason is not None:
        ev.reason = reason
        ev.flags = ev.flags | F_REASON
    return ev


#: a hook program's body: (b, ctx value, skb pointer, hook index, drop reason or None, options)
Body = Callable[[Any, Any, Any, int, Any, Any], None]


def skb_programs(index: int, body: Body, prefix: str) -> Hook:
    """The candidates for hook *index* of :data:`HOOKS`, best first: raw tracepoint, tp_btf,
    tracepoint; each calls *body* with the skb (and the drop reason at ``kfree_skb``)."""
    hook = HOOKS[index]
    drops = hook.hop == "drop"

    def on_args(b, ctx, opts):
        reason = ctx.arg(2) if drops and "reason" in ctx.names else None
        body(b, ctx.value, ctx.arg(0), index, reason, opts)

    def on_tracepoint(b, ctx, opts):
        reason = ctx.reason if drops and ctx.has_field("reason") else None
        body(b, ctx.value, ctx.skbaddr.rvalue(), index, reason, opts)

    name = f"{prefix}_{index}"
    on_args.__qualname__ = f"on_args[{body.__module__}.{body.__qualname__}:{hook.name}]"
    on_tracepoint.__qualname__ = f"on_tracepoint[{body.__module__}.{body.__qualname__}:{hook.name}]"
    return Hook(
        ProgramDef(on_args, "raw_tracepoint", (hook.name,), name=name),
        ProgramDef(on_args, "tp_btf", (hook.name,), name=name),
        ProgramDef(on_tracepoint, "tracepoint", (hook.category, hook.name), name=name),
    )


def freed_programs(forget: Callable[[Any, Any], None], prefix: str) -> Hook:
    """Where skbs really end, for per-skb state: ``kmem_cache_free`` (most skbs end in
    ``__kfree_skb``, which no skb tracepoint reports, and the kernel reuses the address at
    once).  *forget(b, ptr)* is called with the freed object and the second skb of an fclone
    pair (freed as one object with the first)."""

    def both(b, ptr) -> None:
        forget(b, ptr)
        forget(b, ptr + b.btf.sizeof("struct sk_buff"))

    def on_args(b, ctx, opts):
        both(b, ctx.arg(ctx.names.index("ptr")))

    def on_tracepoint(b, ctx, opts):
        both(b, ctx.ptr.rvalue())

    where = f"{forget.__module__}.{forget.__qualname__}"
    on_args.__qualname__ = f"on_freed_args[{where}]"
    on_tracepoint.__qualname__ = f"on_freed_tracepoint[{where}]"
    name = f"{prefix}_freed"
    return Hook(ProgramDef(on_args, "raw_tracepoint", ("kmem_cache_free",), name=name),
                ProgramDef(on_args, "tp_btf", ("kmem_cache_free",), name=name),
                ProgramDef(on_tracepoint, "tracepoint", ("kmem", "kmem_cache_free"), name=name))


def choose(hooks: list[Hook], kind: str = "auto") -> list[ProgramDef]:
    """The program of each hook this kernel has (hooks it lacks are left out); at least one."""
    from pybpfasm.errors import UsageError

    chosen, missing = [], []
    for hook in hooks:
        try:
            chosen.append(hook.choose(kind))
        except UsageError as err:
            missing.append(str(err))
    if not chosen:
        raise UsageError(missing[0] if missing else "no skb hooks")
    return chosen


def describe(programs: list[ProgramDef]) -> str:
    """The stderr line naming the hooks used: ``hooks: tp_btf net_dev_queue, ...``."""
    return "hooks: " + ", ".join(f"{p.kind} {':'.join(p.target)}" for p in programs)
