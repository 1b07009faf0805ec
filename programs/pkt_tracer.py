"""``pybpfasm pkt-tracer`` (Juniper contrail-vrouter's tracing/pkt_tracer.py): each call of the
listed kernel functions with a packet, on entry and on return, with the packet's addresses,
protocol and ports.

``-f FILE`` lists the functions, one a line (default: the datapath's, from ``netif_rx`` to
``ip_finish_output``); BTF says which argument is the ``struct sk_buff *``, and a function
without BTF takes an argument spec on its line (``FUNC arg=N head=OFF network=OFF``: argument
N points to a struct with the buffer pointer at ``head`` and the u16 network header offset
at ``network``, as vrouter's ``vr_packet``).  Functions not found, inlined or without a
packet argument are named on stderr.  ``-a src=IP dest=IP protocol=N sport=P dport=P``
filters in the kernel (ports in host order: the original compared them unswapped); ``-r``
adds return values (the original accepted it and printed none).  ``-o`` prints, at exit,
one tree per packet (correlated by packet pointer, not by thread: a softirq handles many
packets): every call made with it, nested, each with its duration.

Entry and return are paired in the kernel: a kprobe with its kretprobe by stack pointer
(the kretprobe cannot read the arguments: the original read a clobbered register), an
fentry with its fexit by the skb argument and the thread's depth of traced calls (the same
skb re-enters the same function on one thread when a nested softirq forwards it).  It needs kprobes or fentry: the hook is fentry
where the kernel loads tracing programs, else kprobes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from pybpfasm.dsl import Events, LRUHashMap, PerCPUArray, ProgramDef, Record, char, s64, u8, u16, u32, u64
from pybpfasm.errors import UsageError

from .common import fnhooks, packet, skbhooks
from .common.flowtree import FlowTrees
from .common.packet import PacketFilter
from .common.skbfilters import add_filter_arguments, filter_from
from .common.skbhooks import SkbEvent, SkbFilter
from .common.tool import Tool

ENTRY, RETURN = 0, 1
#: the functions traced without -f: the original skbtracer's kprobes, and the hops between them
DATAPATH = ("netif_rx", "__netif_receive_skb", "napi_gro_receive", "__dev_queue_xmit", "dev_hard_start_xmit",
            "br_handle_frame", "br_handle_frame_finish", "br_pass_frame_up", "br_forward", "__br_forward",
            "br_forward_finish", "br_dev_queue_push_xmit", "ip_rcv", "ip_rcv_finish", "ip_local_deliver",
            "ip_forward", "ip_forward_finish", "nf_hook_slow", "ip_output", "ip_finish_output",
            "ip_finish_output2")
FILTER_KEYS = {"src": "src", "dest": "dst", "protocol": "ip_proto", "sport": "sport", "dport": "dport"}


class Call(Record):
    """One entry or return: the packet (as the skb hooks see it; at a return only its ts,
    skb, pid and cpu), and the call."""

    sk: SkbEvent
    ret: s64
    duration: u64
    comm: char[16]
    tid: u32
    func: u16
    kind: u8


class FrameKey(Record):
    #: the stack pointer at return (kprobes) or the skb (fentry)
    where: u64
    #: fentry call depth << 48 | function index << 32 | thread id
    who: u64


class Frame(Record):
    """When a call began and with which skb: the first fields of an SkbEvent, stored from one."""

    ts: u64
    skb: u64


assert Frame.FIELDS == SkbEvent.FIELDS[:2], "a Frame is the start of an SkbEvent"


@dataclass(frozen=True)
class Options:
    targets: fnhooks.Targets
    filter: SkbFilter = field(default_factory=SkbFilter)
    returns: bool = False
    hook: str = "auto"


events = Events(Call, 1 << 20, name="pt_events")
frames = LRUHashMap(FrameKey, Frame, 65536, name="pt_frames")
#: fentry: each thread's depth of traced calls (an fexit cannot see the stack pointer, and the
#: same skb re-enters the same function on the same thread: forwarded in a nested softirq)
depths = LRUHashMap(u64, u64, 16384, name="pt_depths")
#: each CPU's entry event while it is built
scratch = PerCPUArray(Call, 1, name="pt_call")


def _depth(b, step: int):
    """The thread's call depth after an entry (*step* 1) or before a return (*step* -1)."""
    who = b.var(b.get_current_pid_tgid())
    if step > 0:
        depths.increment(b, who)
    depth = b.var(0)
    with depths.lookup(b, who) as slot:
        depth.set(slot)
        if step < 0:
            with b.if_(depth != 0):
                slot.store(depth - 1)
    return depth


def _deref(b, pointer):
    """``*pskb`` of a ``struct sk_buff **`` argument (typed or not)."""
    from pybpfasm.dsl.types import PtrType, Space

    return b.load(b.var(pointer, PtrType(u64, Space.KERNEL)).deref())


def _frame_key(b, where, index: int, depth=None):
    key = b.stack(FrameKey, "frame key")
    key.where = where
    who = b.var((index << 32) | (b.get_current_pid_tgid() & 0xFFFFFFFF))
    if depth is not None:
        who.set(who | ((depth & 0xFFFF) << 48))  # function indexes fit in 16 bits
    key.who = who
    return key


def _spec_packet(b, arg, spec: fnhooks.ArgSpec, filt: SkbFilter, ev) -> None:
    """Fill *ev* (an SkbEvent) with the packet of a function with an argument spec (filters
    applied: return unless it matches)."""
    from pybpfasm.dsl.types import PtrType, Space

    b.zero(ev)
    base = b.var(arg, PtrType(u8, Space.KERNEL))
    head = b.load(base.at(spec.head).cast(u64).deref())
    offset = b.load(base.at(spec.network).cast(u16).deref())
    packet.parse_ip(b, b.var(head + offset, PtrType(u8, Space.KERNEL)), ev.pkt)
    for cond in [ev.pkt.flags.test(packet.F_IPV4 | packet.F_IPV6), *filt.packet.conditions(ev.pkt)]:
        with b.if_(~cond):
            b.return_(0)
    ev.ts = b.ktime_get_ns()
    ev.skb = arg
    ev.cpu = b.get_smp_processor_id()
    ev.pid = b.get_current_pid_tgid() >> 32


def entry_program(index: int, target: fnhooks.Target, kind: str) -> ProgramDef:
    def on_entry(b, ctx, opts: Options):
        depth = _depth(b, 1) if kind == "fentry" else None
        arg = ctx.arg(target.index)
        skb = _deref(b, arg) if target.by_reference and target.spec is None else arg
        # the key first: nothing it needs stays live through the packet's reads
        key = _frame_key(b, skb if kind == "fentry" else ctx.sp + fnhooks.arch_sp_at_return(), index, depth)
        with scratch.lookup(b, 0) as call:  # a per-CPU slot: the stack is too small beside the packet's reads
            b.zero(call)
            ev = call.sk
            if target.spec is not None:
                _spec_packet(b, arg, target.spec, opts.filter, ev)
            else:
                skbhooks.capture(b, skb, 0, None, opts.filter, into=ev, prefilter=False)
            frames.update(b, key, ev)  # its first fields are a Frame's
            call.tid = b.get_current_pid_tgid() & 0xFFFFFFFF
            b.get_current_comm(call.comm.addr(), 16)
            call.func = index
            call.kind = ENTRY
            events.output(b, ctx.value, call)

    on_entry.__qualname__ = f"on_entry[{kind}:{target.name}]"
    return ProgramDef(on_entry, kind, (target.name,), name=f"pt_in_{index}")


def return_program(index: int, target: fnhooks.Target, kind: str) -> ProgramDef:
    def on_return(b, ctx, opts: Options):
        depth = None
        if kind == "fentry":  # its fexit has the arguments
            depth = _depth(b, -1)
            arg = ctx.arg(target.index)
            where = _deref(b, arg) if target.by_reference else arg
        else:
            where = ctx.sp
        key = _frame_key(b, where, index, depth)
        with frames.lookup(b, key) as frame:
            call = b.stack(Call, "call event")
            b.zero(call)
            call.sk.ts = b.ktime_get_ns()
            call.sk.skb = frame.skb
            call.duration = call.sk.ts - frame.ts
            if opts.returns:
                call.ret = ctx.arg(len(ctx.names)) if kind == "fentry" else ctx.ret
            pid_tgid = b.var(b.get_current_pid_tgid())
            call.tid = pid_tgid & 0xFFFFFFFF
            call.sk.pid = pid_tgid >> 32
            call.sk.cpu = b.get_smp_processor_id()
            b.get_current_comm(call.comm.addr(), 16)
            call.func = index
            call.kind = RETURN
            frames.delete(b, key)
            events.output(b, ctx.value, call)

    on_return.__qualname__ = f"on_return[{kind}:{target.name}]"
    return ProgramDef(on_return, "fexit" if kind == "fentry" else "kretprobe", (target.name,),
                      name=f"pt_out_{index}")


def _filter_pair(text: str) -> tuple[str, Any]:
    """argparse type: one ``-a`` filter, ``src=IP``, ``dest=IP``, ``protocol=N``, ``sport=P``, ``dport=P``."""
    from .common import options as types

    key, sep, value = text.partition("=")
    if not sep or key not in FILTER_KEYS:
        raise argparse.ArgumentTypeError(f"{text!r}: filters are {', '.join(f'{k}=...' for k in FILTER_KEYS)}")
    if key in ("src", "dest"):
        return key, types.ip_address(value)
    if key == "protocol":
        return key, types.integer(0, 255, "protocol number")(value)
    return key, types.port(value)


class PktTracer(Tool):
    """Calls of kernel functions with a packet, on entry and return; per packet with -o."""

    tracing = "packet function calls"
    events = events
    at_exit = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-f", metavar="FILE", dest="file",
                            help="the functions to trace, one a line, each optionally with an argument "
                                 "spec 'arg=N head=OFF network=OFF' (default: the datapath's)")
        parser.add_argument("-r", action="store_true", dest="returns", help="print each call's return value")
        parser.add_argument("-o", action="store_true", dest="organize",
                            help="at exit, one call tree per packet (nested calls, each with its duration)")
        parser.add_argument("-a", nargs="+", type=_filter_pair, default=[], metavar="KEY=VALUE", dest="match",
                            help="only packets with src=IP dest=IP protocol=N sport=P dport=P (ports in host order)")
        add_filter_arguments(parser)
        parser.add_argument("--hook", choices=("auto", "fentry", "kprobe"), default="auto",
                            help="fentry/fexit (auto: where the kernel loads them) or kprobes/kretprobes")

    def unavailable(self) -> str | None:
        kinds = fnhooks.kinds_available()
        if all(kinds.values()):
            return f"{kinds['kprobe']}, and fentry: {kinds['fentry']}"
        return None

    def options(self, args: argparse.Namespace) -> Options:
        if args.interval is not None:
            raise UsageError("-i: pkt-tracer prints each line as it comes, and -o its trees once, at exit")
        match: dict[str, Any] = {}
        for key, value in args.match:
            if key in match:
                raise UsageError(f"-a: {key} given twice")
            match[FILTER_KEYS[key]] = value
        functions = fnhooks.read_functions(args.file) if args.file else [(f, None) for f in DATAPATH]
        targets = fnhooks.resolve(functions)
        if not targets.traced:
            why = "; ".join(f"{n}: {w}" for n, w in targets.skipped.items())
            raise UsageError(f"no function can be traced here: {why}")
        filt = filter_from(args, PacketFilter(**match))
        specs = [t.name for t in targets.traced if t.spec is not None]
        if specs and (filt.netns, filt.ifname, filt.mark, filt.expr) != (None,) * 4:
            raise UsageError(f"--filter and --filter-netns/-ifname/-mark need an skb: {specs[0]} has an argument spec")
        return Options(targets, filt, args.returns, args.hook)

    def _kind(self, opts: Options) -> str:
        kinds = fnhooks.kinds_available()
        wanted = [k for k in ("fentry", "kprobe") if opts.hook in ("auto", k)]
        for kind in wanted:
            if kinds[kind] is None:
                return kind
        raise UsageError(f"cannot hook with {opts.hook} here: {kinds[wanted[0]]}")

    def programs(self, opts: Options) -> list[ProgramDef]:
        kind = self._kind(opts)
        if kind == "kprobe":
            fnhooks.arch_sp_at_return()  # this architecture's pairing is known
        out, self.module_skipped = [], []
        for i, target in enumerate(opts.targets.traced):
            if kind == "fentry" and target.module is not None:
                self.module_skipped.append(target.name)  # module fentry needs its BTF object's fd
                continue
            out += [entry_program(i, target, kind), return_program(i, target, kind)]
        if not out:
            raise UsageError(f"fentry cannot trace module functions ({', '.join(self.module_skipped)}): use --hook kprobe")
        return out

    def notes(self, coll: Any, opts: Options) -> list[str]:
        kinds = sorted({p.kind for p in coll.programs})
        traced = sorted({p.target[0] for p in coll.programs}, key=self.names.index)
        lines = [f"hooks: {'+'.join(kinds)} on {len(traced)} functions: " + ", ".join(traced)]
        skipped = {**opts.targets.skipped,
                   **{n: "a module function (fentry: kprobes only)" for n in self.module_skipped}}
        if skipped:
            lines.append("not traced: " + "; ".join(f"{n}: {w}" for n, w in skipped.items()))
        return lines

    def prepare(self, coll: Any, opts: Options) -> None:
        self.opts = opts
        self.names = [t.name for t in opts.targets.traced]
        self.trees = FlowTrees()
        self.first: int | None = None
        self.packets: dict[int, dict[str, Any]] = {}

    # -- lines ------------------------------------------------------------------------------
    def header(self) -> str | None:
        if self.args.organize:
            return None
        return "%-13s %-12s %-10s %-15s %-15s %-10s %-10s %-10s %s" % (
            "TIME(S)", "COMM", "PID", "saddr", "daddr", "protocol", "sport", "dport", "Trace")

    def row(self, call: Call) -> dict[str, Any] | None:
        ev = call.sk
        if self.first is None:
            self.first = ev.ts
        func = self.names[call.func]
        if call.kind == ENTRY:
            pkt = packet.fields(ev.pkt)
            info = {k: pkt[k] for k in ("src", "dst", "proto", "sport", "dport", "ip_id", "tcp_flags")}
            info.update(skb=f"{ev.skb:x}", ifname=ev.ifname or None, netns=ev.netns or None)
            self.packets[ev.skb] = info
            depth = self.trees.depth(ev.skb)
            key = (ev.skb, *(info[k] for k in ("src", "dst", "proto", "sport", "dport", "ip_id", "tcp_flags")))
            self.trees.entry(key, ev.skb, func, ev.ts, info)
        else:
            info = self.packets.get(ev.skb, {"skb": f"{ev.skb:x}"})
            self.trees.exit(ev.skb, func, ev.ts, call.ret if self.opts.returns else None)
            depth = self.trees.depth(ev.skb)
        if self.args.organize:
            return None
        ev_kind = call.kind
        return {
            "time": round((call.sk.ts - self.first) / 1e9, 9), "comm": call.comm, "pid": call.sk.pid,
            "tid": call.tid, "cpu": call.sk.cpu, "func": func, "event": "entry" if ev_kind == ENTRY else "return",
            "depth": depth, "duration_ns": call.duration if ev_kind == RETURN else None,
            "ret": call.ret if ev_kind == RETURN and self.opts.returns else None,
            **{k: info.get(k) for k in ("skb", "src", "dst", "proto", "sport", "dport", "ip_id", "tcp_flags")},
        }

    def text(self, d: dict[str, Any]) -> str:
        proto = d["proto"] if d["proto"] is not None else "-"
        trace = "  " * d["depth"] + (f"{d['func']} {{" if d["event"] == "entry" else "}")
        if d["event"] == "return":
            trace += f" {d['func']} {d['duration_ns'] / 1000:.3f} us"
            if d["ret"] is not None:
                trace += f" = {d['ret']}"
        return "%-13.9f %-12s %-10d %-15s %-15s %-10s %-10s %-10s %s" % (
            d["time"], d["comm"], d["pid"], d["src"] or "-", d["dst"] or "-", proto,
            d["sport"] if d["sport"] is not None else "-", d["dport"] if d["dport"] is not None else "-", trace)

    # -- -o: one tree per packet, at exit -----------------------------------------------------
    def tick(self, coll: Any, opts: Options) -> list[dict[str, Any]]:
        if not self.args.organize:
            return []
        return [flow.as_dict() for flow in self.trees.all()]

    def tick_text(self, rows: list[dict[str, Any]]) -> list[str]:
        out = []
        for flow in rows:
            src = flow["src"] if flow["sport"] is None else f"{flow['src']}:{flow['sport']}"
            dst = flow["dst"] if flow["dport"] is None else f"{flow['dst']}:{flow['dport']}"
            flags = f" {flow['tcp_flags']}" if flow["tcp_flags"] else ""
            out.append(f"packet {flow['proto']} {src} -> {dst}{flags} (skb {flow['skb']})")
            out += _tree_lines(flow["calls"], 1)
        return out


def _tree_lines(calls: list[dict[str, Any]], depth: int) -> list[str]:
    out = []
    for c in calls:
        took = "unfinished" if c["duration_ns"] is None else f"{c['duration_ns'] / 1000:.3f} us"
        ret = f" = {c['ret']}" if c["ret"] is not None else ""
        out.append(f"{'  ' * depth}{c['func']} {took}{ret}")
        out += _tree_lines(c["calls"], depth + 1)
    return out


tool = PktTracer()

__all__ = ["Options", "tool"]
