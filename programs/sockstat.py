"""``pybpfasm sockstat``: socket calls counted by probe, every interval (the bpftrace book's sockstat).

Each interval prints the time, then ``@[PROBE]: N`` lines, fewest first, as the
book's ``print(@)`` does.  The book counts accept, connect, bind and socket at
their syscall tracepoints and sends and receives at the ``sock_sendmsg`` and
``sock_recvmsg`` kprobes; this kernel-neutral version counts sends and
receives at every send/recv syscall tracepoint instead, each named for what it
is (``tracepoint:syscalls:sys_enter_sendto``...).  Counting happens in the
kernel, one array slot a probe; ``-p`` and ``-c`` are compiled in.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from pybpfasm.dsl import ArrayMap, ProgramDef, tracepoint, u64

from .common.hooks import unavailable
from .common.sockets import Who, add_who_arguments, emit_who, who
from .common.summary import Totals, map_lines
from .common.table import interval_header
from .common.tool import Tool

#: the book's syscalls (accept*, connect, bind, socket*), then every send/recv syscall
SYSCALLS = ("accept", "accept4", "connect", "bind", "socket", "socketpair",
            "sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg")

counts = ArrayMap(u64, len(SYSCALLS), name="ss_counts")


def probe_name(syscall: str) -> str:
    """How bpftrace's ``probe`` names the tracepoint of *syscall*."""
    return f"tracepoint:syscalls:sys_enter_{syscall}"


def counter(index: int, syscall: str) -> ProgramDef:
    """A program counting entries to *syscall* in slot *index*."""

    def count(b, ctx, only: Who):
        emit_who(b, only)
        counts.increment(b, index)

    count.__name__ = f"ss_{syscall}"
    count.__qualname__ = f"count[{syscall}]"
    return tracepoint("syscalls", f"sys_enter_{syscall}")(count)


PROGRAMS = [counter(i, name) for i, name in enumerate(SYSCALLS)]


class SockStat(Tool):
    """Socket calls by probe, every interval."""

    tracing = "socket calls"
    interval = 1.0

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_who_arguments(parser)

    def options(self, args: argparse.Namespace) -> Who:
        return who(args)

    def programs(self, only: Who) -> list[ProgramDef]:
        self.attached = [p for p in PROGRAMS if unavailable(p) is None]
        return self.attached

    def prepare(self, coll: Any, only: Who) -> None:
        self.counts, self.totals = coll.map(counts), Totals()

    def notes(self, coll: Any, only: Who) -> list[str]:
        missing = [p.target[1] for p in PROGRAMS if p not in self.attached]
        lines = [f"hooks: {len(self.attached)} syscall tracepoints (sends and receives counted "
                 "per syscall, not at the book's sock_sendmsg/sock_recvmsg kprobes)"]
        return lines + ([f"this kernel has no tracepoint {', '.join(missing)}"] if missing else [])

    def tick(self, coll: Any, only: Who) -> list[dict[str, Any]]:
        now = {probe_name(s): self.counts[i] for i, s in enumerate(SYSCALLS)}
        return [{"time": round(time.time(), 6), "counts": self.totals.gained(now)}]

    def tick_text(self, rows: list[dict[str, Any]]) -> list[str]:
        lines = []
        for row in rows:
            entries = map_lines("", (((probe,), n) for probe, n in row["counts"].items()))
            lines += [interval_header(when=row["time"]), *entries, *([""] if entries else [])]
        return lines


tool = SockStat()

__all__ = ["SYSCALLS", "tool"]
