"""``pybpfasm skbtracer``: follow packets through the kernel, one line per skb per hook
(DavadDi/skbtracer, on the skb tracepoints instead of kprobes).

Columns as the original prints them: ``time NETWORK_NS CPU INTERFACE DEST_MAC IP_LEN
PKT_INFO TRACE_INFO``, PKT_INFO as ``T_ACK,SYN:src:sport->dst:dport``, ``U:...``,
``I_request:src->dst``/``I_reply``/``I`` (ICMPv6 too) and TRACE_INFO as
``skb.pkt_type:hook``.  IPv6 is traced as well as IPv4.  The original's bugs are not
carried over: ``--keep`` follows a matched skb until it is freed, ``--dropstack``
builds, names print as text (not ``b'eth0'``), ICMPv6 echoes are named, ports
filter TCP/UDP only.  Filters are compiled into the programs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from pybpfasm.clock import WallClock
from pybpfasm.dsl import Events, HashMap, ProgramDef, StackTraceMap, u8, u64
from pybpfasm.errors import UsageError

from .common import options as types
from .common import packet, skbhooks
from .common.packet import PacketFilter
from .common.skbfilters import add_filter_arguments, filter_from
from .common.skbhooks import HOOK_NAMES, HOOKS, SkbEvent, SkbFilter
from .common.tool import Tool

#: TCP flag names as the original prints them, in its order (highest bit first)
TCP_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")
#: ICMP and ICMPv6 echo types: request, reply
ECHO_REQUEST, ECHO_REPLY = (8, 128), (0, 129)
PROTOS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "any": "all"}
KINDS = ("auto", "raw_tracepoint", "tp_btf", "tracepoint")


@dataclass(frozen=True)
class Options:
    filter: SkbFilter = field(default_factory=SkbFilter)
    route: bool = True
    dropstack: bool = False
    callstack: bool = False
    keep: bool = False
    hook: str = "auto"


events = Events(SkbEvent, 1 << 20, name="skbt_events")
stacks = StackTraceMap(4096, name="skbt_stacks")
#: skbs that matched the filters once (--keep): followed until freed
kept = HashMap(u64, u8, 16384, name="skbt_kept")


def trace(b, ctx_value, skb_ptr, hook: int, reason, opts: Options) -> None:
    """One hook's body: filter, build, send (and remember or forget a kept skb)."""
    keep = opts.keep and opts.filter.packet_conditions

    def passes(b, hdr):
        return kept.lookup_ptr(b, skb_ptr) != 0

    ev = skbhooks.capture(b, skb_ptr, hook, reason, opts.filter, passes=passes if keep else None)
    if keep:
        if hook in skbhooks.END_HOOKS:
            with b.if_(ev.flags.test(skbhooks.F_KEPT)):
                kept.delete(b, skb_ptr)
        else:
            with b.if_(~ev.flags.test(skbhooks.F_KEPT)):
                kept.update(b, skb_ptr, 1)
    stack = opts.callstack or (opts.dropstack and HOOKS[hook].hop == "drop")
    ev.kstack = stacks.stackid(b, ctx_value, 0) if stack else -1
    events.output(b, ctx_value, ev)


HOOK_PROGRAMS = [skbhooks.skb_programs(i, trace, "skbt") for i in range(len(HOOKS))]


def forget(b, ptr) -> None:
    kept.delete(b, ptr)


#: --keep: a kept skb is forgotten where its memory is freed
FREED = skbhooks.freed_programs(forget, "skbt")


class SkbTracer(Tool):
    """Any packet through the stack: where each skb was seen, with its headers."""

    tracing = "skbs"
    events = events

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-H", "--ipaddr", type=types.ip_address, help="only packets from or to this address")
        parser.add_argument("--proto", choices=list(PROTOS), default="any", help="only this protocol")
        parser.add_argument("--icmpid", type=types.integer(0, 65535, "ICMP id"),
                            help="only ICMP echoes of this id (with --proto icmp)")
        parser.add_argument("-c", "--catch-count", dest="count", type=types.count, metavar="N",
                            help="exit after N lines (the same as --count)")
        parser.add_argument("-P", "--port", type=types.port, help="only TCP/UDP packets from or to this port")
        parser.add_argument("-p", "--pid", type=types.pid, help="only packets handled in this process's context")
        parser.add_argument("-N", "--netns", type=types.netns_inode, metavar="INODE",
                            help="only packets in this network namespace (inode)")
        parser.add_argument("--dropstack", action="store_true", help="the kernel stack of each drop")
        parser.add_argument("--callstack", action="store_true", help="the kernel stack of every line")
        parser.add_argument("--route", action="store_true",
                            help="the path through the stack (the default unless --dropstack)")
        parser.add_argument("--keep", action="store_true",
                            help="once an skb matches the filters, follow it until it is freed")
        clock = parser.add_mutually_exclusive_group()
        clock.add_argument("-T", "--time", action="store_true", help="HH:MM:SS times (the default)")
        clock.add_argument("-t", "--timestamp", action="store_true",
                           help="seconds since the first line, at us resolution")
        add_filter_arguments(parser)
        parser.add_argument("--hook", choices=KINDS, default="auto",
                            help="how to hook the skb tracepoints (auto: raw tracepoints where the kernel has BTF)")

    def options(self, args: argparse.Namespace) -> Options:
        if args.icmpid is not None and args.proto != "icmp":
            raise UsageError("--icmpid needs --proto icmp")
        pkt = PacketFilter(protocol=PROTOS[args.proto], host=args.ipaddr, port=args.port,
                           icmp_id=args.icmpid)
        filt = filter_from(args, pkt, netns=args.netns, pid=args.pid)
        return Options(filter=filt, route=args.route or not args.dropstack, dropstack=args.dropstack,
                       callstack=args.callstack, keep=args.keep, hook=args.hook)

    def programs(self, opts: Options) -> list[ProgramDef]:
        hooks = HOOK_PROGRAMS if opts.route else [h for i, h in enumerate(HOOK_PROGRAMS)
                                                 if HOOKS[i].hop == "drop"]
        chosen = skbhooks.choose(hooks, opts.hook)
        if opts.keep and opts.filter.packet_conditions:
            chosen.append(FREED.choose(opts.hook))
        return chosen

    def notes(self, coll: Any, opts: Options) -> list[str]:
        return [skbhooks.describe(list(coll.programs))]

    def prepare(self, coll: Any, opts: Options) -> None:
        from pybpfasm.events import StackTraces

        self.stacks = StackTraces(coll.map(stacks))
        self.wall = WallClock()
        self.first_ts: int | None = None

    def header(self) -> str:
        return "%-10s %-12s %-6s %-18s %-12s %-6s %-40s %s" % (
            "time", "NETWORK_NS", "CPU", "INTERFACE", "DEST_MAC", "IP_LEN", "PKT_INFO", "TRACE_INFO")

    def row(self, ev: SkbEvent) -> dict[str, Any]:
        if self.first_ts is None:
            self.first_ts = ev.ts
        pkt = packet.fields(ev.pkt)
        hook = HOOK_NAMES[ev.hook]
        reason = ev.reason if ev.flags & skbhooks.F_REASON else None
        return {
            "time": round(self.wall(ev.ts), 6),
            "since": round((ev.ts - self.first_ts) / 1e9, 6),
            "netns": ev.netns,
            "cpu": ev.cpu,
            "ifname": ev.ifname or None,
            "dest_mac": pkt["dmac"].replace(":", "") if pkt["dmac"] else None,
            "ip_len": pkt["ip_len"],
            "pkt_info": pkt_info(pkt, ev.pkt),
            "trace_info": f"{ev.skb:x}.{ev.pkt_type}:{hook}" + (f"({reason})" if reason else ""),
            "hook": hook,
            "skb": f"{ev.skb:x}",
            "pkt_type": ev.pkt_type,
            "pid": ev.pid,
            "mark": ev.mark,
            **{k: pkt[k] for k in ("src", "dst", "proto", "sport", "dport", "ip_id", "tcp_flags", "icmp_type")},
            "icmp_id": ev.pkt.icmp_id if pkt["icmp_type"] is not None else None,
            "reason": reason,
            "kstack": self._stack(ev.kstack),
        }

    def _stack(self, stack_id: int) -> list[str] | None:
        if stack_id < 0:
            return None
        try:
            return self.stacks.kernel(stack_id)
        except Exception:
            return None

    def text(self, d: dict[str, Any]) -> str:
        if self.args.timestamp:
            when = "%-7.6f" % d["since"]
        else:
            when = time.strftime("%H:%M:%S", time.localtime(d["time"]))
        line = "[%-8s][%-10s] %-6s %-18s %-12s %-6s %-40s %s" % (
            when, d["netns"], d["cpu"], d["ifname"] or "nil", d["dest_mac"] or "-",
            d["ip_len"], d["pkt_info"], d["trace_info"])
        return "\n".join([line, *(f"    {f}" for f in d["kstack"] or [])])


def tcp_flag_names(bits: int) -> str:
    """``ACK,SYN``: the original's names, highest bit first."""
    return ",".join(TCP_FLAG_NAMES[i] for i in reversed(range(8)) if bits >> i & 1)


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def pkt_info(pkt: dict[str, Any], raw: packet.Packet) -> str:
    """PKT_INFO as the original prints it, from a packet's fields and its record
    (IPv6 addresses with ports in brackets)."""
    src, dst, proto = pkt["src"], pkt["dst"], pkt["proto"]
    if proto == "tcp" and pkt["sport"] is not None:
        return f"T_{tcp_flag_names(raw.tcp_flags)}:{_endpoint(src, pkt['sport'])}->{_endpoint(dst, pkt['dport'])}"
    if proto == "udp" and pkt["sport"] is not None:
        return f"U:{_endpoint(src, pkt['sport'])}->{_endpoint(dst, pkt['dport'])}"
    if proto in ("icmp", "icmp6") and pkt["icmp_type"] is not None:
        kind = ("_request" if pkt["icmp_type"] in ECHO_REQUEST else
                "_reply" if pkt["icmp_type"] in ECHO_REPLY else "")
        return f"I{kind}:{src}->{dst}"
    return f"{raw.proto}:{src}->{dst}"


tool = SkbTracer()

__all__ = ["Options", "pkt_info", "tool"]
