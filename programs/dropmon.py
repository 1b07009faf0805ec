"""``pybpfasm dropmon``: a multi-protocol packet drop monitor.

Every ``kfree_skb`` the kernel reports as a drop becomes one event: who
(pid, comm), what (IPv4/IPv6 addresses, IP ID, VLAN, protocol, ports, ICMP
type and code), where (interface, network namespace, the dropping function
and the kernel stack) and why (the kernel's drop reason, by its own name).

Filters (``--src``, ``--dst``, ``--protocol``, ports, ``--reason``,
``--ifname``, ``--netns``) are compiled into the BPF program: a filter you
did not ask for emits no code, and only matching drops reach user space.
The hook is chosen by asking the kernel: the ``skb:kfree_skb`` tracepoint
where it exists, else a kprobe on ``kfree_skb_reason``/``kfree_skb``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from pybpfasm import pcapfilter
from pybpfasm.clock import WallClock
from pybpfasm.dsl import (
    Events,
    PerCPUArray,
    ProgramDef,
    Record,
    StackTraceMap,
    char,
    kernel_enum,
    s32,
    u8,
    u16,
    u32,
    u64,
)
from pybpfasm.errors import UsageError

from .common import options as types
from .common import packet
from .common.hooks import Hook
from .common.packet import ETH_P_8021AD, ETH_P_8021Q, Packet, PacketFilter, bytes_cond
from .common.reasons import PREFIX, reason_value, tracefs_reasons
from .common.tool import Tool

#: DropEvent.flags: the program recorded a drop reason
F_REASON = 1
BPF_F_USER_STACK = 1 << 8

Reason = kernel_enum("skb_drop_reason", u32, prefix=PREFIX, fallback=tracefs_reasons)


class DropEvent(Record):
    ts: u64
    location: u64
    comm: char[16]
    ifname: char[16]
    pkt: Packet
    pid: u32
    reason: Reason
    netns: u32
    kstack: s32
    ustack: s32
    flags: u8


@dataclass
class Options:
    """What to trace, decided before the program is built."""

    filter: PacketFilter = field(default_factory=PacketFilter)
    #: --filter EXPR: a pcap-filter expression over the dropped packet's bytes
    pcap: pcapfilter.Filter | None = None
    reasons: list[int] = field(default_factory=list)
    ifname: bytes | None = None
    netns: int | None = None
    kstack: bool = True
    ustack: bool = False
    #: --vlan: remember tags at receive (a program on every received packet)
    vlan: bool = False
    hook: str = "auto"


class VlanSeen(Record):
    """The last VLAN-tagged packet this CPU received (the stack strips tags before IP)."""

    skb: u64
    vlan: u16


events = Events(DropEvent, 1 << 20, name="drop_events")
last_vlan = PerCPUArray(VlanSeen, 1, name="drop_vlan")
stacks = StackTraceMap(4096, name="drop_stacks")


def build_event(b, ctx_value, skb_ptr, protocol, reason, location, opts: Options) -> None:
    """Send a DropEvent for a drop that passes every filter (else the program returns).

    The cheapest tests come first (the caller tests the reason): device and
    namespace, then the packet's headers, each on the fewest fields that decide
    it.  Ring space is reserved only then, before the rest of the event (who,
    when, the stacks) is written straight into it: a full ring costs one failed
    reservation, counted, and no stack walk.  Kernel memory is read with as few
    bpf_probe_read_kernel calls as the layout allows: the program runs for every
    drop in the system.
    """
    skb_ref = skb_ptr.cast("struct sk_buff").deref()
    skb = b.read(skb_ref, "dev", "sk", name="sk_buff pointers")
    hdr = packet.read_skb(b, skb_ref, *(pcapfilter.SKB_FIELDS if opts.pcap is not None else ()))
    dev = b.read(skb.dev.deref(), "nd_net", "name", name="net_device fields")
    netns = b.var(dev.nd_net.net.ns.inum, u32)
    with b.if_(netns == 0):  # no device yet: the socket's namespace
        netns.set(skb.sk.__sk_common.skc_net.net.ns.inum)
    device = []
    if opts.ifname is not None:
        device.append(bytes_cond(dev.name, opts.ifname))
    if opts.netns is not None:
        device.append(netns == opts.netns)
    _return_unless(b, device)
    if opts.pcap is not None:
        _return_unless(b, [opts.pcap.matches_skb(b, skb_ptr, hdr)])
    filtered, pkt = opts.filter != PacketFilter(), None
    if filtered and events.resolve() == "ringbuf":  # decided before any ring space is taken
        pkt = b.stack(Packet, "the dropped packet")
        b.zero(pkt)
        packet.parse(b, hdr, protocol, pkt)
        _return_unless(b, opts.filter.conditions(pkt))
    with events.reserve(b, ctx_value) as ev:
        if pkt is not None:
            b.copy(ev.pkt, pkt)
        else:
            packet.parse(b, hdr, protocol, ev.pkt)
            if filtered:  # perf buffers: the record is on the stack until it is sent
                _return_unless(b, opts.filter.conditions(ev.pkt))
        ev.ifname = dev.name
        ev.netns = netns
        ev.ts = b.ktime_get_ns()
        ev.pid = b.get_current_pid_tgid() >> 32
        b.get_current_comm(ev.comm.addr(), 16)
        if opts.vlan:
            with last_vlan.lookup(b, 0) as seen, b.if_(seen.skb == skb_ptr):
                ev.pkt.vlan = seen.vlan  # tagged on arrival, untagged before this drop
                ev.pkt.flags = ev.pkt.flags | packet.F_VLAN
        if reason is not None:
            ev.reason = reason
            ev.flags = F_REASON
        ev.location = location
        ev.kstack = stacks.stackid(b, ctx_value, 0) if opts.kstack else -1
        ev.ustack = stacks.stackid(b, ctx_value, BPF_F_USER_STACK) if opts.ustack else -1


def _return_unless(b, conds: list) -> None:
    """Return early unless every condition holds."""
    for c in conds:
        with b.if_(~c):
            b.return_(0)


def _reason_filter(b, reason, opts: Options) -> None:
    if opts.reasons:
        with b.if_(~reason.in_(*opts.reasons)):
            b.return_(0)


def remember_vlan(b, skb_ptr) -> None:
    """Remember a received packet's VLAN tag: the stack removes it before most drops.

    This runs for every packet, so the common untagged case costs one read
    and one per-CPU slot test; the slot is written only for tagged packets
    (and cleared by the next untagged one, so a recycled skb is never mislabelled).
    """
    skb_ref = skb_ptr.cast("struct sk_buff").deref()
    fields = packet.vlan_fields(b)
    hdr = b.read(skb_ref, *fields, "vlan_tci", "protocol", "data", name="sk_buff fields")
    in_packet = hdr.protocol.in_(ETH_P_8021Q, ETH_P_8021AD)
    offloaded = packet.offloaded_vlan(hdr, fields)
    with last_vlan.lookup(b, 0) as seen:
        with b.if_(in_packet):
            tag = b.read(hdr.data.rvalue().cast("struct vlan_hdr").deref(), name="vlan header")
            seen.vlan = tag.h_vlan_TCI.to_host() & packet.VLAN_VID_MASK
            seen.skb = skb_ptr
        with b.if_(offloaded):
            seen.vlan = hdr.vlan_tci & packet.VLAN_VID_MASK
            seen.skb = skb_ptr
        with b.if_(~(in_packet | offloaded) & (seen.skb != 0)):
            seen.skb = 0


def drop(b, ctx_value, skb_ptr, protocol, reason, location, opts: Options) -> None:
    """The drop program's body, whatever the hook: filter, build, send."""
    if reason is not None:
        _reason_filter(b, reason, opts)
    build_event(b, ctx_value, skb_ptr, protocol, reason, location, opts)


def on_receive_raw(b, ctx, opts: Options):
    remember_vlan(b, ctx.arg(0))


def on_receive_tp(b, ctx, opts: Options):
    remember_vlan(b, ctx.skbaddr.rvalue())


def on_kfree_skb_raw(b, ctx, opts: Options):
    """``kfree_skb(skb, location[, reason[, rx_sk]])``: arguments as the kernel passes them,
    no trace buffer built (and its link detaches at once, where a perf event waits for RCU)."""
    skb = ctx.arg(0)
    reason = ctx.arg(2) if "reason" in ctx.names else None
    drop(b, ctx.value, skb, skb.cast("struct sk_buff").protocol.to_host(), reason, ctx.arg(1), opts)


def on_kfree_skb_tp(b, ctx, opts: Options):
    reason = ctx.reason if ctx.has_field("reason") else None
    drop(b, ctx.value, ctx.skbaddr.rvalue(), ctx.protocol, reason, ctx.location, opts)


def kprobe_program(function: str, skb_arg: int, reason_arg: int | None) -> ProgramDef:
    """The drop program as a kprobe on *function* (for kernels without the tracepoint)."""

    def on_drop(b, ctx, opts: Options):
        skb = ctx.arg(skb_arg)
        reason = ctx.arg(reason_arg) if reason_arg is not None else None
        drop(b, ctx.value, skb, skb.cast("struct sk_buff").protocol.to_host(), reason, ctx.caller, opts)

    on_drop.__qualname__ = f"on_drop[{function}]"
    return ProgramDef(on_drop, "kprobe", (function,), name="on_kfree_skb")


#: where received packets are seen, cheapest first
receive_hook = Hook(
    ProgramDef(on_receive_raw, "raw_tracepoint", ("netif_receive_skb",), name="on_receive"),
    ProgramDef(on_receive_tp, "tracepoint", ("net", "netif_receive_skb"), name="on_receive"),
)
#: where drops are freed, cheapest first: the raw tracepoint (with BTF), the tracepoint,
#: then kprobes on (function, skb argument, reason argument)
drop_hook = Hook(
    ProgramDef(on_kfree_skb_raw, "raw_tracepoint", ("kfree_skb",), name="on_kfree_skb"),
    ProgramDef(on_kfree_skb_tp, "tracepoint", ("skb", "kfree_skb"), name="on_kfree_skb"),
    kprobe_program("sk_skb_reason_drop", 1, 2),   # 6.11+
    kprobe_program("kfree_skb_reason", 0, 1),     # 5.17 - 6.10
    kprobe_program("kfree_skb", 0, None),         # before drop reasons
)


# -- user space ----------------------------------------------------------------------------
class DropMon(Tool):
    """Every packet drop: who, what, where and why."""

    tracing = "packet drops"
    events = events

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        PacketFilter.add_arguments(parser, "drops")
        parser.add_argument("--reason", action="append", default=[], metavar="NAME",
                            help="only this drop reason, e.g. NO_SOCKET (repeatable)")
        parser.add_argument("--ifname", type=types.ifname, help="only drops on this interface")
        parser.add_argument("--filter", type=pcapfilter.argument, metavar="EXPR",
                            help="only drops whose packet matches this pcap-filter expression "
                                 "(tcpdump's syntax, e.g. 'udp and dst port 53')")
        parser.add_argument("--netns", type=types.netns_inode, metavar="INODE",
                            help="only drops in this network namespace")
        parser.add_argument("--vlan", action="store_true",
                            help="also report the VLAN tag of drops whose tag the stack removed "
                                 "before dropping them (a program on every received packet); "
                                 "tags still in the packet or skb are reported without it")
        stack = parser.add_mutually_exclusive_group()
        stack.add_argument("--no-stack", action="store_true", help="do not record kernel stacks")
        stack.add_argument("--user-stack", action="store_true", help="also record the user stack")
        parser.add_argument("--hook", choices=("auto", *drop_hook.kinds), default="auto",
                            help="where to hook: the kfree_skb raw tracepoint (auto: where the "
                                 "kernel has BTF), the tracepoint, or a kprobe")

    def options(self, args: argparse.Namespace) -> Options:
        try:
            reasons = [reason_value(r) for r in args.reason]
        except Exception as err:
            raise UsageError(f"--reason: {err}") from None
        filt = PacketFilter.from_args(args)
        return Options(filter=filt, pcap=args.filter, reasons=reasons, ifname=args.ifname, netns=args.netns,
                       kstack=not args.no_stack, ustack=args.user_stack, vlan=args.vlan, hook=args.hook)

    def programs(self, opts: Options) -> list[ProgramDef]:
        drop_program = drop_hook.choose(opts.hook)
        if not opts.vlan:
            return [drop_program]
        return [receive_hook.choose("tracepoint" if opts.hook == "tracepoint" else "auto"), drop_program]

    def notes(self, coll: Any, opts: Options) -> list[str]:
        hooks = ", ".join(f"{p.kind} {':'.join(p.target)}" for p in coll.programs)
        lines = [f"hooks: {hooks}"]
        if not self.has_reasons:
            lines.append("this kernel reports no drop reasons (they arrived in 5.17)")
        return lines

    def prepare(self, coll: Any, opts: Options) -> None:
        from pybpfasm.events import StackTraces
        from pybpfasm.kernel import Kallsyms

        self.opts = opts
        self.kallsyms = Kallsyms.load()
        self.stacks = StackTraces(coll.map(stacks))
        self.wall = WallClock()
        self.has_reasons = bool(Reason.names())
        from .common.metrics import Bounded

        self.bound = Bounded()
        #: drops by (reason, ifname, netns) for --prometheus/--textfile (None: not asked)
        self.counted: dict[tuple, int] | None = {} if self.publisher is not None else None


    def row(self, ev: DropEvent) -> dict[str, Any]:
        pkt = packet.fields(ev.pkt)
        reason = ev.reason if ev.flags & F_REASON and self.has_reasons else None
        if self.counted is not None:
            key = (reason, ev.ifname or None, ev.netns or None)
            self.counted[key] = self.counted.get(key, 0) + 1
        return {
            "time": round(self.wall(ev.ts), 6),
            "pid": ev.pid,
            "comm": ev.comm,
            **{k: pkt[k] for k in ("src", "dst", "ip_id", "vlan", "proto", "sport", "dport",
                                   "icmp_type", "icmp_code")},
            "ifname": ev.ifname or None,
            "reason": reason,
            "location": self.kallsyms.symbolize(ev.location) if ev.location else None,
            "netns": ev.netns or None,
            "kstack": self._stack(ev.kstack, None),
            "ustack": self._stack(ev.ustack, ev.pid) if self.opts.ustack else None,
        }

    def metrics(self) -> list:
        from .common.metrics import counters

        return [counters("pybpfasm_drops_total", "packets dropped, as printed", ("reason", "ifname", "netns"),
                         (self.counted or {}).items(), self.bound)]

    def _stack(self, stack_id: int, pid: int | None) -> list[str] | None:
        if stack_id < 0:
            return None
        try:
            return self.stacks.kernel(stack_id) if pid is None else self.stacks.user(stack_id, pid)
        except Exception:
            return None

    def text(self, d: dict[str, Any]) -> str:
        t = time.strftime("%H:%M:%S", time.localtime(d["time"])) + f".{int(d['time'] * 1e6) % 1000000:06d}"
        where = f"{d['src']}" + (f":{d['sport']}" if d["sport"] is not None else "")
        to = f"{d['dst']}" + (f":{d['dport']}" if d["dport"] is not None else "")
        proto = d["proto"] if d["proto"] is not None else "-"
        extra = []
        if d["icmp_type"] is not None:
            extra.append(f"type={d['icmp_type']} code={d['icmp_code']}")
        if d["ip_id"] is not None:
            extra.append(f"id={d['ip_id']}")
        if d["vlan"] is not None:
            extra.append(f"vlan={d['vlan']}")
        line = (f"{t} {d['pid']:<7} {d['comm']:<16} {proto:<5} {where} -> {to} "
                f"{' '.join(extra)} dev={d['ifname'] or '-'} netns={d['netns'] or '-'} "
                f"reason={d['reason'] if d['reason'] is not None else '-'} at {d['location'] or '?'}")
        frames = [f"    {f}" for f in (d["kstack"] or [])] + [f"    {f}" for f in (d["ustack"] or [])]
        return "\n".join([line, *frames])


tool = DropMon()

__all__ = ["DropEvent", "Options", "tool"]
