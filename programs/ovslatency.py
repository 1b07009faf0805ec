"""``pybpfasm ovslatency``: time spent in ``ovs_vport_receive`` (David Ahern's ovslatency).

Every packet an OVS port receives is timed from the entry of
``ovs_vport_receive`` to its return (flow lookup, actions, upcall), and
counted in dsahern's buckets: <= 10, 25, 50, 100, 250, 500 and > 500 us,
plus the total.  Each ``-t``/``-i`` interval prints what it added, per port
(the receiving device) and for all ports; ``--hist`` prints a log2
histogram of microseconds per port instead.

The original keeps one start time per CPU, which a nested receive (a packet
sent by the datapath into an internal port re-enters it on the same CPU)
overwrites.  Here each CPU keeps a stack of receives in progress: entry
pushes (time, skb, port), return pops, so nested receives are each timed.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from pybpfasm.dsl import HashMap, PerCPUArray, ProgramDef, Record, char, kprobe, kretprobe, u32, u64

from .common import options as types
from .common import ovs
from .common.hist import log2_hist
from .common.summary import Totals
from .common.table import interval_header
from .common.tool import Tool

#: dsahern's bucket limits (us); a last bucket holds what is above the last limit
LIMITS = (10, 25, 50, 100, 250, 500)
LABELS = (*(f"<={n}us" for n in LIMITS), f">{LIMITS[-1]}us")
#: receives one CPU can have in progress at once (the datapath's own recursion limit is 5)
DEPTH = 8
ALL = "all"


class Nesting(Record):
    depth: u32


class Receive(Record):
    """A receive in progress."""

    ts: u64
    skb: u64
    port: char[16]


class Key(Record):
    port: char[16]
    slot: u32  #: a bucket index, or a log2 slot with --hist


@dataclass(frozen=True)
class Options:
    hist: bool = False


nesting = PerCPUArray(Nesting, 1, name="ovslat_depth")
receives = PerCPUArray(Receive, DEPTH, name="ovslat_recv")
counts = HashMap(Key, u64, 4096, name="ovslat_counts")
#: receives not timed: a return with no entry (begun before the tool, or its entry's
#: kretprobe instance missing), or nesting beyond DEPTH
missed = PerCPUArray(u64, 1, name="ovslat_missed")


def log2_slot(b, value):
    """bcc's ``bpf_log2l(value)``: the bit length of *value*, 1 for 0 (unrolled halvings)."""
    v = b.var(value)
    bits = b.var(0)
    for shift in (32, 16, 8, 4, 2, 1):
        with b.if_(v >= (1 << shift)):
            v.set(v >> shift)
            bits.set(bits + shift)
    return bits + 1


def bucket(b, usecs):
    """dsahern's bucket index for *usecs*: 0 for <= 10 ... 6 for > 500."""
    index = b.var(len(LIMITS))
    for i in reversed(range(len(LIMITS))):
        with b.if_(usecs <= LIMITS[i]):
            index.set(i)
    return index


@kprobe("ovs_vport_receive")
def ovslat_enter(b, ctx, opts: Options):
    skb = ctx.arg(1)
    with nesting.lookup(b, 0) as n:
        depth = n.depth.rvalue()
        with b.if_(depth >= DEPTH):
            missed.increment(b, 0)
            b.return_(0)
        with receives.lookup(b, depth) as slot:
            slot.ts = b.ktime_get_ns()
            slot.skb = skb
            dev = skb.cast("struct sk_buff").deref().dev.rvalue()
            with b.if_(dev != 0):
                b.probe_read(slot.port, dev.non_null().deref().name)
            with b.else_():
                b.zero(slot.port)
        n.depth = depth + 1


@kretprobe("ovs_vport_receive")
def ovslat_exit(b, ctx, opts: Options):
    now = b.ktime_get_ns()
    with nesting.lookup(b, 0) as n:
        depth = n.depth.rvalue()
        with b.if_((depth == 0) | (depth > DEPTH)):
            missed.increment(b, 0)
            b.return_(0)
        top = depth - 1
        n.depth = top
        with receives.lookup(b, top) as slot:
            usecs = (now - slot.ts) // 1000
            key = b.stack(Key, "the count's key")
            b.zero(key)
            b.copy(key.port, slot.port)
            key.slot = log2_slot(b, usecs) if opts.hist else bucket(b, usecs)
            counts.increment(b, key)


class OvsLatency(Tool):
    """Time in ovs_vport_receive, in dsahern's buckets, per port, every interval."""

    tracing = "ovs_vport_receive latency"
    interval = 1.0

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-t", dest="interval", type=types.seconds, metavar="S",
                            default=argparse.SUPPRESS,
                            help="seconds between outputs, as in dsahern's ovslatency (same as -i)")
        parser.add_argument("--hist", action="store_true",
                            help="a log2 histogram of microseconds per port instead of the buckets")

    def unavailable(self) -> str | None:
        return ovs.unavailable()

    def options(self, args: argparse.Namespace) -> Options:
        return Options(hist=args.hist)

    def programs(self, opts: Options) -> list[ProgramDef]:
        return [ovslat_enter, ovslat_exit]

    def prepare(self, coll: Any, opts: Options) -> None:
        self.opts = opts
        self.counts, self.missed, self.totals = coll.map(counts), coll.map(missed), Totals()
        self.missed_seen = 0

    def tick(self, coll: Any, opts: Options) -> list[dict[str, Any]]:
        gained = self.totals.gained({(k.port, k.slot): n for k, n in self.counts.items()})
        missed_now = sum(self.missed[0])  # one count per CPU
        missed, self.missed_seen = missed_now - self.missed_seen, missed_now
        ports: dict[str, dict[int, int]] = {}
        for (port, slot), n in gained.items():
            ports.setdefault(port or "-", {})[slot] = n
        when = round(time.time(), 6)
        rows = [self._row(when, port, slots) for port, slots in sorted(ports.items())]
        if not opts.hist:
            total: dict[int, int] = {}
            for slots in ports.values():
                for slot, n in slots.items():
                    total[slot] = total.get(slot, 0) + n
            rows.append(self._row(when, ALL, total))
        if missed:
            rows.append({"time": when, "missed": missed})
        return rows

    def _row(self, when: float, port: str, slots: dict[int, int]) -> dict[str, Any]:
        if self.opts.hist:
            return {"time": when, "port": port, "usecs_log2": {str(s): n for s, n in sorted(slots.items())},
                    "total": sum(slots.values())}
        return {"time": when, "port": port,
                "buckets": {label: slots.get(i, 0) for i, label in enumerate(LABELS)},
                "total": sum(slots.values())}

    def tick_text(self, rows: list[dict[str, Any]]) -> list[str]:
        lines = [interval_header()]
        if not self.opts.hist:
            lines.append(f"{'PORT':<16}" + "".join(f"{label:>10}" for label in LABELS) + f"{'TOTAL':>10}")
        for row in rows:
            if "missed" in row:
                lines.append(f"{row['missed']} receives not timed (begun before tracing, nested "
                             f"deeper than {DEPTH}, or a return the kernel did not report)")
            elif self.opts.hist:
                slots = {int(s): n for s, n in row["usecs_log2"].items()}
                lines += log2_hist(slots, "usecs", f"port = {row['port']}").rstrip("\n").splitlines()
            else:
                lines.append(f"{row['port']:<16}" + "".join(f"{n:>10}" for n in row["buckets"].values())
                             + f"{row['total']:>10}")
        return lines


tool = OvsLatency()

__all__ = ["LABELS", "LIMITS", "tool"]
