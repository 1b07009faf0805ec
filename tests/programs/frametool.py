"""Two small tools on the frame, for the frame's own tests.

``python -m tests.programs.frametool calls --pid PID`` prints every getppid()
of process PID as an event; ``... counts --pid PID -i S`` prints how many
there were each interval.  Both take the frame's shared options.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from pybpfasm.cli import run_tool
from pybpfasm.dsl import ArrayMap, Events, Record, char, tracepoint, u32, u64
from pybpfasm.tools.common import options as types
from pybpfasm.tools.common.tool import Tool


class Call(Record):
    seq: u64
    pid: u32
    comm: char[16]


#: small on purpose: a stopped reader overflows them quickly
calls = Events(Call, 1 << 14, name="ft_calls", perf_pages=2)
seq = ArrayMap(u64, 1, name="ft_seq")
counts = ArrayMap(u64, 1, name="ft_counts")


@dataclass(frozen=True)
class Options:
    pid: int


@tracepoint("syscalls", "sys_enter_getppid")
def on_getppid(b, ctx, opts: Options):
    with b.if_((b.get_current_pid_tgid() >> 32) != opts.pid):
        b.return_(0)
    counts.increment(b, 0)
    with seq.lookup(b, 0) as n:
        with calls.reserve(b, ctx.value) as ev:
            ev.seq = n
            ev.pid = opts.pid
            b.get_current_comm(ev.comm.addr(), 16)
        n.store(n + 1)  # calls of one process are sequential: no atomic needed


class _Base(Tool):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pid", type=types.pid, required=True, help="the process to watch")

    def options(self, args: argparse.Namespace) -> Options:
        return Options(args.pid)

    def programs(self, opts: Options) -> list:
        return [on_getppid]


class CallsTool(_Base):
    tracing = "getppid() calls"
    events = calls

    def row(self, ev: Call) -> dict[str, Any]:
        return {"seq": ev.seq, "pid": ev.pid, "comm": ev.comm}

    def header(self) -> str:
        return "SEQ PID COMM"

    def text(self, row: dict[str, Any]) -> str:
        return f"{row['seq']} {row['pid']} {row['comm']}"


class CountsTool(_Base):
    tracing = "getppid() counts"
    interval = 1.0

    def prepare(self, coll: Any, opts: Options) -> None:
        self.counts = coll.map(counts)

    def tick(self, coll: Any, opts: Options) -> list[dict[str, Any]]:
        n = self.counts[0]
        self.counts[0] = 0
        return [{"calls": n}]


TOOLS = {"calls": CallsTool(), "counts": CountsTool()}

if __name__ == "__main__":
    name, *rest = sys.argv[1:]
    sys.exit(run_tool(TOOLS[name], f"frametool {name}", rest))
