"""``pybpfasm sockstat``: socket calls counted by probe, every interval (the bpftrace book's sockstat).

Each interval prints the time, then ``@[PROBE]: N`` lines, fewest first, as the
book's ``print(@)`` does.  Accept, connect, bind and socket are counted at their
syscall tracepoints, as in the book; sends and receives at the
``__sock_sendmsg``/``sock_recvmsg`` kprobes where the kernel has both (the
book's ``sock_sendmsg`` is no longer on the send syscalls' path), else at every
send/recv syscall tracepoint, each named for what it is
(``tracepoint:syscalls:sys_enter_sendto``...).  Counting happens in the kernel,
one array slot a probe; ``-p`` and ``-c`` are compiled in.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from pybpfasm.dsl import ArrayMap, ProgramDef, kprobe, tracepoint, u64

from .common.hooks import unavailable
from .common.hookset import HookSet
from .common.metrics import Family, counters
from .common.sockets import Options, add_hook_argument, add_who_arguments, emit_who, who_and_hook
from .common.summary import Totals, map_lines
from .common.table import interval_header
from .common.tool import Tool

#: the book's syscalls (accept*, connect, bind, socket*)
SYSCALLS = ("accept", "accept4", "connect", "bind", "socket", "socketpair")
#: the send/recv kprobes, and the syscalls that stand in for them without kprobes.  The book
#: probes sock_sendmsg, but since 6.6 (and the 2023 stable backports: 5.10.198, 6.1.56...) the
#: send syscalls call __sock_sendmsg instead; where that is inlined (Debian 6.12) no kprobe
#: sees every send, and the syscall tracepoints count them.
FUNCTIONS = ("__sock_sendmsg", "sock_recvmsg")
SEND_RECV = ("sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg")
#: every probe, as bpftrace's ``probe`` names it: its slot in the counts is its index here
PROBES = (*(f"tracepoint:syscalls:sys_enter_{s}" for s in SYSCALLS),
          *(f"kprobe:{f}" for f in FUNCTIONS),
          *(f"tracepoint:syscalls:sys_enter_{s}" for s in SEND_RECV))

counts = ArrayMap(u64, len(PROBES), name="ss_counts")


def counter(probe: str) -> ProgramDef:
    """A program counting hits of *probe* (``kprobe:F`` or ``tracepoint:C:E``) in its slot."""
    index, (kind, *target) = PROBES.index(probe), probe.split(":")

    def count(b, ctx, opts: Options):
        emit_who(b, opts.only)
        counts.increment(b, index)

    count.__name__ = f"ss_{target[-1].removeprefix('sys_enter_').lstrip('_')}"
    count.__qualname__ = f"count[{probe}]"
    return (kprobe(*target) if kind == "kprobe" else tracepoint(*target))(count)


CALLS = [counter(p) for p in PROBES[:len(SYSCALLS)]]
SENDS = HookSet(kprobe=[counter(f"kprobe:{f}") for f in FUNCTIONS],
                tracepoint=[counter(f"tracepoint:syscalls:sys_enter_{s}") for s in SEND_RECV])


class SockStat(Tool):
    """Socket calls by probe, every interval."""

    tracing = "socket calls"
    interval = 1.0

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_who_arguments(parser)
        add_hook_argument(parser, SENDS.kinds, "where sends and receives are counted: kprobes on "
                          "__sock_sendmsg/sock_recvmsg (auto: where the kernel has them) "
                          "or the syscall tracepoints")

    def options(self, args: argparse.Namespace) -> Options:
        return who_and_hook(args)

    def programs(self, opts: Options) -> list[ProgramDef]:
        self.calls = [p for p in CALLS if unavailable(p) is None]
        self.hook = SENDS.choose(opts.hook)
        return self.calls + self.hook.programs

    def prepare(self, coll: Any, opts: Options) -> None:
        self.counts, self.totals = coll.map(counts), Totals()

    def notes(self, coll: Any, opts: Options) -> list[str]:
        where = ("the __sock_sendmsg/sock_recvmsg kprobes" if self.hook.kind == "kprobe" else
                 f"{len(SEND_RECV)} send/recv syscall tracepoints"
                 + "".join(f" ({kind}s: {why})" for kind, why in self.hook.passed_over.items()))
        missing = [p.target[-1] for p in CALLS if p not in self.calls]
        return [f"hooks: {len(self.calls)} syscall tracepoints, sends and receives at {where}",
                *([f"this kernel has no tracepoint {', '.join(missing)}"] if missing else [])]

    def tick(self, coll: Any, opts: Options) -> list[dict[str, Any]]:
        now = {probe: self.counts[i] for i, probe in enumerate(PROBES)}
        return [{"time": round(time.time(), 6), "counts": self.totals.gained(now)}]

    def metrics(self) -> list[Family]:
        return [counters("pybpfasm_socket_calls_total", "socket calls, by probe", ("probe",),
                         (((probe,), self.counts[i]) for i, probe in enumerate(PROBES)))]

    def tick_text(self, rows: list[dict[str, Any]]) -> list[str]:
        lines = []
        for row in rows:
            entries = map_lines("", (((probe,), n) for probe, n in row["counts"].items()))
            lines += [interval_header(when=row["time"]), *entries, *([""] if entries else [])]
        return lines


tool = SockStat()

__all__ = ["PROBES", "tool"]
