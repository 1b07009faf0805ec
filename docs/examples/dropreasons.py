"""Packet drops counted by reason in the kernel, printed as a table every interval."""

from __future__ import annotations

import argparse
import sys

from pybpfasm.cli import run_tool
from pybpfasm.dsl import HashMap, Record, kernel_enum, tracepoint, u32, u64
from pybpfasm.tools.common import options
from pybpfasm.tools.common.table import Table
from pybpfasm.tools.common.tool import Tool

Reason = kernel_enum("skb_drop_reason", u32, prefix="SKB_DROP_REASON_")


class Key(Record):  # 1. records: a map key both sides understand (reasons decode by name)
    reason: Reason


drops = HashMap(Key, u64, 1024, name="dr_drops")


@tracepoint("skb", "kfree_skb")  # 2. programs: count in the kernel, nothing per event
def count(b, ctx, netns: int | None):
    if netns is not None:  # decided in Python: without --netns there is no such code
        skb = b.read(ctx.skbaddr.cast("struct sk_buff").deref(), "dev")
        with b.if_((skb.dev == 0) | (skb.dev.nd_net.net.ns.inum != netns)):
            b.return_(0)
    key = b.stack(Key)
    key.reason = ctx.reason
    drops.increment(b, key)


class DropReasons(Tool):
    tracing = "packet drops by reason"
    interval = 1.0
    table = Table([("reason", "REASON", 24), ("count", "COUNT", 8, ">")], sort_by="count", top=10)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # 3. options
        parser.add_argument("--netns", type=options.netns_inode, help="only this network namespace")

    def options(self, args: argparse.Namespace) -> int | None:
        return args.netns

    def programs(self, netns: int | None) -> list:
        return [count]

    def prepare(self, coll, netns: int | None) -> None:
        self.counts, self.seen = coll.map(drops), {}

    def tick(self, coll, netns: int | None) -> list[dict]:  # 4. rows: this interval's drops
        now = {key.reason: n for key, n in self.counts.items()}  # totals; no reset races
        rows = [{"reason": r, "count": n - self.seen.get(r, 0)} for r, n in now.items()]
        self.seen = now
        return [row for row in rows if row["count"]]


if __name__ == "__main__":
    sys.exit(run_tool(DropReasons(), "dropreasons", sys.argv[1:]))
