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
import gc
import json
import os
import sys
import time
from dataclasses import dataclass, field
from socket import AF_INET, AF_INET6, inet_ntop
from typing import IO, Any

from pybpfasm.btf import BTF, BTFError
from pybpfasm.dsl import (
    Collection,
    PerCPUArray,
    PerfEventArray,
    ProgramDef,
    Record,
    RingBuf,
    StackTraceMap,
    be16,
    be32,
    char,
    s32,
    tracepoint,
    u8,
    u16,
    u32,
    u64,
)
from pybpfasm.errors import UsageError

from .common.cli import IPAddress, ip_address, port, run_until_done
from .common.reasons import drop_reasons, reason_value

#: event flags
F_VLAN, F_PORTS, F_ICMP, F_IPV4, F_IPV6 = 1, 2, 4, 8, 16
ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x86DD, 0x8100, 0x88A8
PROTOCOLS = {"all": (), "icmp": (1, 58), "tcp": (6,), "udp": (17,)}
BPF_F_USER_STACK = 1 << 8


class DropEvent(Record):
    ts: u64
    location: u64
    pid: u32
    reason: u32
    netns: u32
    kstack: s32
    ustack: s32
    vlan: u16
    flags: u8
    proto: u8
    icmp_type: u8
    icmp_code: u8
    ip_id: be16
    sport: be16
    dport: be16
    saddr: u8[16]
    daddr: u8[16]
    comm: char[16]
    ifname: char[16]


@dataclass
class Options:
    """What to trace, decided before the program is built."""

    src: IPAddress | None = None
    dst: IPAddress | None = None
    protocol: str = "all"
    src_port: int | None = None
    dst_port: int | None = None
    reasons: list[int] = field(default_factory=list)
    ifname: str | None = None
    netns: int | None = None
    kstack: bool = True
    ustack: bool = False
    #: "ringbuf" or "perf": how events reach user space
    buffer: str = "ringbuf"


class VlanSeen(Record):
    """The last VLAN-tagged packet this CPU received (the stack strips tags before IP)."""

    skb: u64
    vlan: u16


events = RingBuf(DropEvent, 1 << 20, name="drop_events")
perf_events = PerfEventArray(DropEvent, name="drop_perf")  # kernels before ring buffers (5.8)
last_vlan = PerCPUArray(VlanSeen, 1, name="drop_vlan")
stacks = StackTraceMap(4096, name="drop_stacks")


def build_event(b, ctx, skb_ptr, protocol, opts: Options):
    """Fill a DropEvent on the stack from an skb; returns it (filters not yet applied).

    Kernel memory is read with as few bpf_probe_read_kernel calls as the
    layout allows: the program runs for every drop in the system.
    """
    ev = b.stack(DropEvent, "the drop event")
    b.zero(ev)
    skb_ref = skb_ptr.cast("struct sk_buff").deref()
    has = b.btf.has_field
    vlan_fields = [f for f in ("vlan_all", "vlan_present") if has("sk_buff", f)]
    skb = b.read(skb_ref, "dev", "sk", name="sk_buff pointers")
    hdr = b.read(skb_ref, *vlan_fields, "vlan_tci", "network_header", "head", name="sk_buff headers")
    ev.ts = b.ktime_get_ns()
    ev.pid = b.get_current_pid_tgid() >> 32
    b.get_current_comm(ev.comm.addr(), 16)
    dev = b.read(skb.dev.deref(), "nd_net", "name", name="net_device fields")
    ev.ifname = dev.name
    ev.netns = dev.nd_net.net.ns.inum
    with b.if_(ev.netns == 0):  # no device yet: the socket's namespace
        ev.netns = skb.sk.__sk_common.skc_net.net.ns.inum
    _vlan_offloaded(b, hdr, ev, vlan_fields)
    with last_vlan.lookup(b, 0) as seen, b.if_(seen.skb == skb_ptr):
        ev.vlan = seen.vlan  # tagged on arrival, untagged before this drop
        ev.flags = ev.flags | F_VLAN

    proto = b.var(protocol)
    l3 = b.var(hdr.head.rvalue().at(hdr.network_header))
    with b.if_((proto == ETH_P_8021Q) | (proto == ETH_P_8021AD)):  # the tag is still in the packet
        tag = b.read(l3.cast("struct vlan_hdr").deref(), name="vlan header")
        ev.vlan = tag.h_vlan_TCI.to_host() & 0xFFF
        ev.flags = ev.flags | F_VLAN
        proto.set(tag.h_vlan_encapsulated_proto.to_host())
        l3.set(l3 + 4)
    with b.if_(proto == ETH_P_IP):
        ip = b.read(l3.cast("struct iphdr").deref(), name="ip header")
        ev.flags = ev.flags | F_IPV4
        ev.proto = ip.protocol
        ev.ip_id = ip.id
        ev.saddr.view(be32).store(ip.saddr)  # raw network-order bytes
        ev.daddr.view(be32).store(ip.daddr)
        with b.if_((ip.frag_off.to_host() & 0x1FFF) == 0):  # only first fragments carry ports
            _transport(b, ev, l3 + (ip.ihl * 4), ip.protocol)
    with b.if_(proto == ETH_P_IPV6):
        ip6 = b.read(l3.cast("struct ipv6hdr").deref(), name="ipv6 header")
        ev.flags = ev.flags | F_IPV6
        ev.proto = ip6.nexthdr
        ev.saddr = ip6.saddr
        ev.daddr = ip6.daddr
        _transport(b, ev, l3 + 40, ip6.nexthdr)
    if ctx is not None:
        ev.location = ctx.location
        if ctx.has_field("reason"):
            ev.reason = ctx.reason
    return ev


def _vlan_present(skb, vlan_fields: list[str]):
    """The condition that the skb carries an offloaded (out of the packet) VLAN tag."""
    if "vlan_all" in vlan_fields:
        return skb.vlan_all != 0
    if "vlan_present" in vlan_fields:
        return skb.vlan_present != 0
    return skb.vlan_tci.test(0x1000)  # before 4.19: VLAN_TAG_PRESENT in vlan_tci


def _vlan_offloaded(b, skb, ev, vlan_fields: list[str]) -> None:
    """The VLAN tag the driver or the stack already took out of the packet."""
    with b.if_(_vlan_present(skb, vlan_fields)):
        ev.vlan = skb.vlan_tci & 0xFFF
        ev.flags = ev.flags | F_VLAN


def _transport(b, ev, l4, proto) -> None:
    with b.if_((proto == 6) | (proto == 17)):
        ports = b.read(l4.cast("struct udphdr").deref(), name="ports")
        ev.sport = ports.source
        ev.dport = ports.dest
        ev.flags = ev.flags | F_PORTS
    with b.if_((proto == 1) | (proto == 58)):
        icmp = b.read(l4.cast("struct icmphdr").deref(), name="icmp header")
        ev.icmp_type = icmp.type
        ev.icmp_code = icmp.code
        ev.flags = ev.flags | F_ICMP


def _address_cond(ev_field, flags, addr):
    """The event's address equals *addr* (and is of its family)."""
    if addr.version == 4:
        return (flags.test(F_IPV4)) & (ev_field.view(u32) == _be32(addr.packed))
    words = [ev_field.view(u32, 4 * i) == _be32(addr.packed[4 * i:4 * i + 4]) for i in range(4)]
    cond = flags.test(F_IPV6)
    for w in words:
        cond = cond & w
    return cond


def _be32(raw: bytes) -> int:
    """Four packet bytes as the u32 a little- or big-endian load yields."""
    return int.from_bytes(raw, sys.byteorder)


def emit_filters(b, ev, opts: Options) -> None:
    """Return early unless the event matches every filter the user gave."""
    conds = []
    flags = ev.flags
    if opts.src is not None:
        conds.append(_address_cond(ev.saddr, flags, opts.src))
    if opts.dst is not None:
        conds.append(_address_cond(ev.daddr, flags, opts.dst))
    if PROTOCOLS[opts.protocol]:
        proto_cond = None
        for p in PROTOCOLS[opts.protocol]:
            c = ev.proto == p
            proto_cond = c if proto_cond is None else proto_cond | c
        conds.append((flags.test(F_IPV4 | F_IPV6)) & proto_cond)
    if opts.src_port is not None:
        conds.append(flags.test(F_PORTS) & (ev.sport == opts.src_port))
    if opts.dst_port is not None:
        conds.append(flags.test(F_PORTS) & (ev.dport == opts.dst_port))
    if opts.ifname is not None:
        name = opts.ifname.encode().ljust(16, b"\0")
        conds.append((ev.ifname.view(u64) == int.from_bytes(name[:8], sys.byteorder))
                     & (ev.ifname.view(u64, 8) == int.from_bytes(name[8:], sys.byteorder)))
    if opts.netns is not None:
        conds.append(ev.netns == opts.netns)
    for c in conds:
        with b.if_(~c):
            b.return_(0)


def emit_output(b, ctx_value, ev, opts: Options) -> None:
    if opts.kstack:
        ev.kstack = stacks.stackid(b, ctx_value, 0)
    else:
        ev.kstack = -1
    if opts.ustack:
        ev.ustack = stacks.stackid(b, ctx_value, BPF_F_USER_STACK)
    else:
        ev.ustack = -1
    if opts.buffer == "perf":
        perf_events.output(b, ctx_value, ev)
    else:
        events.output(b, ev)


def _reason_filter(b, reason, opts: Options) -> None:
    if not opts.reasons:
        return
    cond = None
    for r in opts.reasons:
        c = reason == r
        cond = c if cond is None else cond | c
    with b.if_(~cond):
        b.return_(0)


@tracepoint("net", "netif_receive_skb")
def on_receive(b, ctx, opts: Options):
    """Remember a received packet's VLAN tag: the stack removes it before most drops.

    This runs for every packet, so the common untagged case costs one read
    and one per-CPU slot test; the slot is written only for tagged packets
    (and cleared by the next untagged one, so a recycled skb is never mislabelled).
    """
    skb_ptr = ctx.skbaddr.rvalue()
    skb_ref = skb_ptr.cast("struct sk_buff").deref()
    vlan_fields = [f for f in ("vlan_all", "vlan_present") if b.btf.has_field("sk_buff", f)]
    hdr = b.read(skb_ref, *vlan_fields, "vlan_tci", "protocol", "data", name="sk_buff fields")
    in_packet = (hdr.protocol == ETH_P_8021Q) | (hdr.protocol == ETH_P_8021AD)
    offloaded = _vlan_present(hdr, vlan_fields)
    with last_vlan.lookup(b, 0) as seen:
        with b.if_(in_packet):
            tag = b.read(hdr.data.rvalue().cast("struct vlan_hdr").deref(), name="vlan header")
            seen.vlan = tag.h_vlan_TCI.to_host() & 0xFFF
            seen.skb = skb_ptr
        with b.if_(offloaded):
            seen.vlan = hdr.vlan_tci & 0xFFF
            seen.skb = skb_ptr
        with b.if_(~(in_packet | offloaded) & (seen.skb != 0)):
            seen.skb = 0


@tracepoint("skb", "kfree_skb")
def on_kfree_skb(b, ctx, opts: Options):
    if ctx.has_field("reason"):
        _reason_filter(b, ctx.reason, opts)
    ev = build_event(b, ctx, ctx.skbaddr.rvalue(), ctx.protocol, opts)
    emit_filters(b, ev, opts)
    emit_output(b, ctx.value, ev, opts)


#: where drops are freed, newest kernels first: (function, skb argument, reason argument)
KPROBE_TARGETS = (
    ("sk_skb_reason_drop", 1, 2),   # 6.11+
    ("kfree_skb_reason", 0, 1),     # 5.17 - 6.10
    ("kfree_skb", 0, None),         # before drop reasons
)


def kprobe_program(function: str, skb_arg: int, reason_arg: int | None) -> ProgramDef:
    """The drop program as a kprobe on *function* (for kernels without the tracepoint)."""

    def on_drop(b, ctx, opts: Options):
        skb = ctx.arg(skb_arg)
        if reason_arg is not None:
            _reason_filter(b, ctx.arg(reason_arg), opts)
        proto = skb.cast("struct sk_buff").protocol.to_host()
        ev = build_event(b, None, skb, proto, opts)
        if reason_arg is not None:
            ev.reason = ctx.arg(reason_arg)
        ev.location = ctx.caller
        emit_filters(b, ev, opts)
        emit_output(b, ctx.value, ev, opts)

    return ProgramDef(on_drop, "kprobe", (function,), name="on_kfree_skb_kp")


def choose_program(hook: str = "auto") -> ProgramDef:
    """The ``skb:kfree_skb`` tracepoint where the kernel has it (or *hook* says so),
    else a kprobe on the function this kernel frees dropped packets with."""
    from pybpfasm.kernel import Kallsyms, tracefs_path

    if hook in ("auto", "tracepoint"):
        if os.path.exists(tracefs_path("events", "skb", "kfree_skb")):
            return on_kfree_skb
        if hook == "tracepoint":
            raise UsageError("this kernel has no skb:kfree_skb tracepoint: use --hook kprobe")
    symbols = Kallsyms.load()
    for function, skb_arg, reason_arg in KPROBE_TARGETS:
        if function in symbols:
            return kprobe_program(function, skb_arg, reason_arg)
    raise UsageError("this kernel has neither the skb:kfree_skb tracepoint nor kfree_skb")


# -- user space ----------------------------------------------------------------------------
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}


class Formatter:
    """Turns raw events into dicts (the JSON keys) and text lines."""

    def __init__(self, coll: Collection, opts: Options) -> None:
        from pybpfasm.events import StackTraces
        from pybpfasm.kernel import Kallsyms

        self.reasons = drop_reasons()
        self.kallsyms = Kallsyms.load()
        self.stacks = StackTraces(coll.map(stacks))
        self.boot_offset = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)
        self.opts = opts

    def as_dict(self, ev: DropEvent) -> dict[str, Any]:
        v4, v6 = ev.flags & F_IPV4, ev.flags & F_IPV6
        ip = bool(v4 or v6)
        src = dst = None
        if v4:
            src, dst = (inet_ntop(AF_INET, bytes(a[:4])) for a in (ev.saddr, ev.daddr))
        elif v6:
            src, dst = (inet_ntop(AF_INET6, bytes(a)) for a in (ev.saddr, ev.daddr))
        ports = bool(ev.flags & F_PORTS)
        icmp = bool(ev.flags & F_ICMP)
        return {
            "time": round(self.boot_offset + ev.ts / 1e9, 6),
            "pid": ev.pid,
            "comm": ev.comm,
            "src": src,
            "dst": dst,
            "ip_id": ev.ip_id if v4 else None,
            "vlan": ev.vlan if ev.flags & F_VLAN else None,
            "proto": (PROTO_NAMES.get(ev.proto, ev.proto) if ip else None),
            "sport": ev.sport if ports else None,
            "dport": ev.dport if ports else None,
            "icmp_type": ev.icmp_type if icmp else None,
            "icmp_code": ev.icmp_code if icmp else None,
            "ifname": ev.ifname or None,
            "reason": self.reasons.get(ev.reason, ev.reason) if self.reasons is not None else None,
            "location": self.kallsyms.symbolize(ev.location) if ev.location else None,
            "netns": ev.netns or None,
            "kstack": self._stack(ev.kstack, None),
            "ustack": self._stack(ev.ustack, ev.pid) if self.opts.ustack else None,
        }

    def _stack(self, stack_id: int, pid: int | None) -> list[str] | None:
        if stack_id < 0:
            return None
        try:
            return self.stacks.kernel(stack_id) if pid is None else self.stacks.user(stack_id, pid)
        except Exception:
            return None

    @staticmethod
    def text(d: dict[str, Any]) -> str:
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", type=ip_address, help="only drops from this IPv4/IPv6 address")
    parser.add_argument("--dst", type=ip_address, help="only drops to this IPv4/IPv6 address")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="all",
                        help="only this protocol (icmp covers ICMPv6)")
    parser.add_argument("--src-port", type=port, help="only drops from this TCP/UDP port")
    parser.add_argument("--dst-port", type=port, help="only drops to this TCP/UDP port")
    parser.add_argument("--log-file", help="also append the output to this file")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.add_argument("--reason", action="append", default=[], metavar="NAME",
                        help="only this drop reason, e.g. NO_SOCKET (repeatable)")
    parser.add_argument("--ifname", help="only drops on this interface")
    parser.add_argument("--netns", type=int, metavar="INODE", help="only drops in this network namespace")
    stack = parser.add_mutually_exclusive_group()
    stack.add_argument("--no-stack", action="store_true", help="do not record kernel stacks")
    stack.add_argument("--user-stack", action="store_true", help="also record the user stack")
    parser.add_argument("--count", type=int, metavar="N", help="exit after N drops")
    parser.add_argument("--buffer", choices=("auto", "ringbuf", "perf"), default="auto",
                        help="how events reach user space: a ring buffer (5.8+, auto where "
                             "present) or per-CPU perf buffers")
    parser.add_argument("--btf", metavar="FILE",
                        help="kernel types from FILE (raw BTF or a vmlinux with .BTF) for "
                             "kernels without /sys/kernel/btf/vmlinux")
    parser.add_argument("--hook", choices=("auto", "tracepoint", "kprobe"), default="auto",
                        help="where to hook: the kfree_skb tracepoint (auto: where present) "
                             "or a kprobe")
    parser.add_argument("--duration", type=float, metavar="S", help="exit after S seconds")


def options(args: argparse.Namespace) -> Options:
    if args.ifname is not None and not 0 < len(args.ifname.encode()) < 16:
        raise UsageError(f"--ifname: {args.ifname!r} is not an interface name (1-15 bytes)")
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    try:
        reasons = [reason_value(r) for r in args.reason]
    except Exception as err:
        raise UsageError(f"--reason: {err}") from None
    buffer = args.buffer
    if buffer == "auto":
        from pybpfasm.features import map_type
        from pybpfasm.sys import MapType

        buffer = "ringbuf" if map_type(MapType.RINGBUF) else "perf"
    return Options(src=args.src, dst=args.dst, protocol=args.protocol, src_port=args.src_port,
                   dst_port=args.dst_port, reasons=reasons, ifname=args.ifname, netns=args.netns,
                   kstack=not args.no_stack, ustack=args.user_stack, buffer=buffer)


def _external_btf(path: str | None) -> BTF | None:
    if path is None:
        return None
    try:
        return BTF.from_file(path)
    except BTFError as err:
        raise UsageError(f"--btf: {err}") from None


def run(args: argparse.Namespace) -> int:
    opts = options(args)
    log: IO[str] | None = None
    if args.log_file:
        try:
            log = open(args.log_file, "a")  # noqa: SIM115 - closed below
        except OSError as err:
            raise UsageError(f"--log-file: cannot open {args.log_file}: {err.strerror}") from None
    try:
        return _trace(args, opts, log)
    finally:
        if log:
            log.close()


def _trace(args: argparse.Namespace, opts: Options, log: IO[str] | None) -> int:
    from pybpfasm.events import PerfBuffer, RingBuffer

    prog = choose_program(args.hook)
    with Collection(btf=_external_btf(args.btf)) as coll:
        coll.load(prog, opts)
        coll.load(on_receive, opts)
        drop_reasons()  # read from BTF now, then free BTF before kallsyms is read
        BTF.release_kernel()
        gc.collect()  # the builder's objects are cycles that still hold the BTF
        coll.attach(on_receive)
        coll.attach(prog)
        fmt = Formatter(coll, opts)
        if opts.buffer == "perf":
            reader = PerfBuffer(coll.map(perf_events), DropEvent, pages=64)
        else:
            reader = RingBuffer(coll.map(events), DropEvent, lost=coll.map(events.lost))
        if fmt.reasons is None and not args.json:
            print("note: this kernel reports no drop reasons (they arrived in 5.17)", file=sys.stderr)
        print("Tracing packet drops... Ctrl-C to end.", file=sys.stderr, flush=True)

        def emit(line: str) -> None:
            print(line, flush=True)
            if log:
                print(line, file=log, flush=True)

        seen = 0
        reported_lost = 0

        def handle(batch: list) -> bool:
            nonlocal seen, reported_lost
            for ev in batch:
                d = fmt.as_dict(ev)
                emit(json.dumps(d) if args.json else fmt.text(d))
                seen += 1
                if args.count is not None and seen >= args.count:
                    return True
            lost = reader.lost
            if args.json and lost > reported_lost:
                emit(json.dumps({"lost": lost - reported_lost}))
                reported_lost = lost
            return False

        try:
            run_until_done(reader, handle, args.duration)
        finally:
            lost = reader.lost
            if lost > reported_lost and args.json:
                emit(json.dumps({"lost": lost - reported_lost}))
            if lost:
                print(f"Lost {lost} events", file=sys.stderr)
            reader.close()
    return 0


__all__ = ["DropEvent", "Options", "add_arguments", "run"]
