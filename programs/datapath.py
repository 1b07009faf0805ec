"""``pybpfasm datapath`` (bcc's packet_datapath_tracing): one line per hop of each packet to or
from ``--host`` (every IP packet without it), on the skb tracepoints.

Hops: ``tx`` (queued on a device, ``net:net_dev_queue``), ``rx`` (received by a namespace's
stack, ``net:netif_receive_skb``), ``forward`` (a tx of a packet the same namespace received
on another device: routed), ``bridge`` (the same, received on a bridge port: switched),
``netfilter`` (freed with the NETFILTER_DROP reason) and ``drop`` (any other ``kfree_skb``).
A forward or bridge line names the device it came from.  ``--latency`` counts, in the
kernel, the time between consecutive hooks of the same skb (keyed by its pointer) as a log2
histogram per edge, printed at exit (or every ``-i`` seconds).
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pybpfasm.clock import WallClock
from pybpfasm.dsl import Events, ProgramDef
from pybpfasm.errors import UsageError

from .common import options as types
from .common import packet, skbhooks
from .common.columns import Columns
from .common.edges import EdgeLatency
from .common.hist import log2_hist
from .common.packet import PacketFilter
from .common.skbfilters import add_filter_arguments, filter_from
from .common.skbhooks import HOOK_NAMES, HOOKS, SkbEvent, SkbFilter
from .common.table import interval_header
from .common.tool import Tool

#: the hooks datapath uses: a hop each, and consume_skb where an skb's latency state ends
USED = tuple(HOOK_NAMES.index(n) for n in ("net_dev_queue", "netif_receive_skb", "kfree_skb", "consume_skb"))
NETFILTER_DROP = "NETFILTER_DROP"
#: skbs whose last hop is remembered in user space (skbs freed where no hook sees them age out)
REMEMBERED = 65536
KINDS = ("auto", "raw_tracepoint", "tp_btf", "tracepoint")
COLUMNS = Columns([("time", "TIME", 15), ("hop", "HOP", 9), ("netns", "NETNS", 10, ">"),
                   ("device", "DEVICE", 12), ("proto", "PROTO", 5), ("flow", "PACKET", 44),
                   ("info", "INFO", 0)])


@dataclass(frozen=True)
class Options:
    filter: SkbFilter = field(default_factory=SkbFilter)
    latency: bool = False
    hook: str = "auto"


events = Events(SkbEvent, 1 << 20, name="dp_events")
latency = EdgeLatency("dp")


def hop(b, ctx_value, skb_ptr, hook: int, reason, opts: Options) -> None:
    """One hook's body: the packet's line, or (``--latency``) its edge from the last hook."""
    if opts.latency and HOOKS[hook].hop == "free":
        latency.forget(b, skb_ptr)  # consume_skb: no line, no edge; the skb is done
        return
    ev = skbhooks.capture(b, skb_ptr, hook, reason, opts.filter, bridge_port=not opts.latency)
    if opts.latency:
        if HOOKS[hook].hop == "drop":
            latency.step(b, skb_ptr, hook, ev.ts)
            latency.forget(b, skb_ptr)
        else:
            latency.step(b, skb_ptr, hook, ev.ts)
        return
    ev.kstack = -1
    events.output(b, ctx_value, ev)


PROGRAMS = {i: skbhooks.skb_programs(i, hop, "dp") for i in USED}


def forget(b, ptr) -> None:
    latency.forget(b, ptr)


#: --latency: an skb's last hook is forgotten where its memory is freed (else the next skb
#: at that address would start from it)
FREED = skbhooks.freed_programs(forget, "dp")


class Datapath(Tool):
    """Each packet to or from a host, hop by hop through namespaces, routers and bridges."""

    tracing = "packet hops"
    events = events
    at_exit = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", type=types.ip_address,
                            help="only packets from or to this IPv4/IPv6 address (default: every IP packet)")
        parser.add_argument("--dport", type=types.port, help="only packets to this TCP/UDP port")
        parser.add_argument("--proto", choices=("tcp", "udp", "icmp"), help="only this protocol")
        parser.add_argument("--latency", action="store_true",
                            help="no lines: a histogram per edge of the time between consecutive hooks "
                                 "of the same packet, at exit (or every -i seconds)")
        add_filter_arguments(parser)
        parser.add_argument("--hook", choices=KINDS, default="auto",
                            help="how to hook the skb tracepoints (auto: raw tracepoints where the kernel has BTF)")

    def options(self, args: argparse.Namespace) -> Options:
        if args.interval is not None and not args.latency:
            raise UsageError("-i/--interval prints latency histograms: it needs --latency")
        pkt = PacketFilter(host=args.host, dport=args.dport, protocol=args.proto or "all")
        return Options(filter=filter_from(args, pkt), latency=args.latency, hook=args.hook)

    def programs(self, opts: Options) -> list[ProgramDef]:
        if not opts.latency:
            return skbhooks.choose([PROGRAMS[i] for i in USED[:-1]], opts.hook)
        return [*skbhooks.choose([PROGRAMS[i] for i in USED], opts.hook), FREED.choose(opts.hook)]

    def notes(self, coll: Any, opts: Options) -> list[str]:
        return [skbhooks.describe(list(coll.programs))]

    def prepare(self, coll: Any, opts: Options) -> None:
        self.wall = WallClock()
        self.last: OrderedDict[tuple, tuple[int, str, bool]] = OrderedDict()
        self.seen: dict[tuple[str, str], dict[int, int]] = {}

    # -- lines ------------------------------------------------------------------------------
    def header(self) -> str | None:
        return None if self.args.latency else COLUMNS.header()

    def row(self, ev: SkbEvent) -> dict[str, Any]:
        pkt = packet.fields(ev.pkt)
        hook = HOOK_NAMES[ev.hook]
        reason = ev.reason if ev.flags & skbhooks.F_REASON else None
        kind, came_from = self._hop(ev, pkt, HOOKS[ev.hook].hop, reason)
        return {
            "time": round(self.wall(ev.ts), 6),
            "hop": kind,
            "hook": hook,
            "netns": ev.netns or None,
            "ifname": ev.ifname or None,
            "from": came_from,
            **{k: pkt[k] for k in ("src", "dst", "proto", "sport", "dport", "tcp_flags", "ip_id",
                                   "icmp_type")},
            "skb": f"{ev.skb:x}",
            "reason": reason,
        }

    def _hop(self, ev: SkbEvent, pkt: dict[str, Any], base: str, reason: str | None) -> tuple[str, str | None]:
        """The hop an event is, and the device a forwarded or bridged packet came from.

        The packet is known by its skb and its IP header (a pointer reused for another packet
        after a free no hook saw is another packet)."""
        key = (ev.skb, pkt["src"], pkt["dst"], pkt["proto"], pkt["sport"], pkt["dport"], pkt["ip_id"])
        prev = self.last.pop(key, None)
        if base == "drop":
            return ("netfilter" if reason == NETFILTER_DROP else "drop"), None
        kind, came_from = base, None
        if base == "tx" and prev is not None:
            netns, ifname, bridged = prev
            if netns == ev.netns and ifname != ev.ifname:
                kind, came_from = ("bridge" if bridged else "forward"), ifname
        if base == "rx":
            self.last[key] = (ev.netns, ev.ifname, bool(ev.flags & skbhooks.F_BRIDGE_PORT))
            if len(self.last) > REMEMBERED:
                self.last.popitem(last=False)
        return kind, came_from

    def text(self, d: dict[str, Any]) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(d["time"])) + f".{int(d['time'] * 1e6) % 1000000:06d}"
        device = d["ifname"] or "-"
        if d["from"]:
            device = f"{d['from']}->{device}"
        src = d["src"] if d["sport"] is None else f"{d['src']}:{d['sport']}"
        dst = d["dst"] if d["dport"] is None else f"{d['dst']}:{d['dport']}"
        info = [d["tcp_flags"] or "", d["reason"] or ""]
        return COLUMNS.line({"time": when, "hop": d["hop"], "netns": d["netns"], "device": device,
                             "proto": d["proto"], "flow": f"{src} -> {dst}",
                             "info": " ".join(i for i in info if i)}).rstrip()

    # -- latency ------------------------------------------------------------------------------
    def tick(self, coll: Any, opts: Options) -> list[dict[str, Any]]:
        if not opts.latency:
            return []
        rows = []
        for edge, slots in sorted(latency.histograms(coll, HOOK_NAMES).items()):
            seen = self.seen.setdefault(edge, {})
            now = {s: n - seen.get(s, 0) for s, n in sorted(slots.items()) if n > seen.get(s, 0)}
            self.seen[edge] = slots
            if now:  # this interval's counts (the maps hold totals: no reset races)
                rows.append({"from": edge[0], "to": edge[1], "count": sum(now.values()),
                             "slots": {str(s): n for s, n in now.items()}})
        return rows

    def tick_text(self, rows: list[dict[str, Any]]) -> list[str]:
        if not self.args.latency:
            return []
        out = [interval_header()]
        for r in rows:
            text = log2_hist({int(s): n for s, n in r["slots"].items()}, "nsecs",
                             f"edge = {r['from']} -> {r['to']}")
            out += text.rstrip("\n").splitlines()
        return out


tool = Datapath()

__all__ = ["Options", "tool"]
