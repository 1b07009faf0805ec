"""``pybpfasm soconnect``: IPv4 and IPv6 connect() calls with address, latency and result
(the bpftrace book's soconnect).

The address is copied from the caller's ``sockaddr`` when ``connect`` is entered
(other families are left out there), and the event is sent when it returns,
with the time it took and its result: the book's strings where the book has
one, the C library's (``os.strerror``) for every other errno.  The calls are
seen at the connect tracepoints, as in the book, or with ``--hook kprobe`` (and
where the kernel has no syscall tracepoints) at a kprobe and a kretprobe on the
syscall's wrapper.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import socket
from typing import Any

from pybpfasm.dsl import Events, LRUHashMap, ProgramDef, Record, char, s32, u8, u32, u64

from .common.columns import Columns
from .common.sockets import Options, add_hook_argument, add_who_arguments, emit_who, who_and_hook
from .common.syscalls import SyscallHooks
from .common.tool import Tool

#: bytes of the largest address kept: a sockaddr_in6 (a sockaddr_in is the first 16)
SOCKADDR = 28
SIZES = {int(socket.AF_INET): 16, int(socket.AF_INET6): SOCKADDR}

#: the book's words for connect()'s results (its @err2str); others are os.strerror's
BOOK_RESULTS = {
    0: "Success",
    errno.EPERM: "Permission denied",
    errno.EINTR: "Interrupted",
    errno.EBADF: "Invalid sockfd",
    errno.EAGAIN: "Routing cache insuff.",
    errno.EACCES: "Perm. denied (EACCES)",
    errno.EFAULT: "Sock struct addr invalid",
    errno.ENOTSOCK: "FD not a socket",
    errno.EPROTOTYPE: "Socket protocol error",
    errno.EAFNOSUPPORT: "Address family invalid",
    errno.EADDRINUSE: "Local addr in use",
    errno.EADDRNOTAVAIL: "No port available",
    errno.ENETUNREACH: "Network unreachable",
    errno.EISCONN: "Already connected",
    errno.ETIMEDOUT: "Timeout",
    errno.ECONNREFUSED: "Connect refused",
    errno.EALREADY: "Not yet completed",
    errno.EINPROGRESS: "In progress",
}


class Pending(Record):
    """A connect() under way: when it started and where to."""

    start: u64
    sockaddr: u8[SOCKADDR]


class Connect(Record):
    latency: u64
    pid: u32
    ret: s32
    comm: char[16]
    sockaddr: u8[SOCKADDR]


events = Events(Connect, 1 << 18, name="soconnect_ev")
pending = LRUHashMap(u64, Pending, 10240, name="soconnect_pend")  # a thread killed mid-call leaves its entry


def _enter(b, ctx, opts: Options, syscall: str) -> None:
    from pybpfasm.dsl.types import Space

    emit_who(b, opts.only)
    sa = ctx.uservaddr.cast("struct sockaddr_in6", Space.USER).deref()
    family = sa.sin6_family.rvalue()
    start = b.stack(Pending, "the pending connect")
    b.zero(start)
    for fam, size in SIZES.items():
        with b.if_(family == fam):
            b.probe_read(start.sockaddr, sa, size)
    with b.if_(~family.in_(*SIZES)):
        b.return_(0)
    start.start = b.ktime_get_ns()
    pending.update(b, b.get_current_pid_tgid(), start)


def _exit(b, ctx, opts: Options, syscall: str) -> None:
    tid = b.get_current_pid_tgid()
    with pending.lookup(b, tid) as start:
        with events.reserve(b, ctx.value) as ev:
            ev.latency = b.ktime_get_ns() - start.start
            ev.pid = tid >> 32
            ev.ret = ctx.ret
            b.get_current_comm(ev.comm)
            ev.sockaddr = start.sockaddr
        pending.delete(b, tid)


#: connect at entry and exit: its tracepoints (the book's), or kprobes on its wrapper
HOOKS = SyscallHooks("socon_", {"connect": ("fd", "uservaddr", "addrlen")}, enter=_enter, leave=_exit)


def result(err: int) -> str:
    """The RESULT column for errno *err* (0: success)."""
    return BOOK_RESULTS.get(err) or os.strerror(err)


class SoConnect(Tool):
    """IP connect() calls, one line each."""

    tracing = "IP connect() calls"
    events = events
    columns = Columns([("pid", "PID", 6), ("comm", "PROCESS", 16), ("family", "FAM", 3),
                       ("address", "ADDRESS", 16), ("port", "PORT", 5),
                       ("latency_us", "LAT(us)", 8, ">"), ("result", "RESULT")])

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_who_arguments(parser)
        add_hook_argument(parser, SyscallHooks.KINDS, "the connect tracepoints, as the book (auto: "
                          "where present), or kprobes on the syscall wrapper")

    def options(self, args: argparse.Namespace) -> Options:
        return who_and_hook(args)

    def programs(self, opts: Options) -> list[ProgramDef]:
        self.kind, _, programs = HOOKS.choose(opts.hook)
        return programs

    def notes(self, coll: Any, opts: Options) -> list[str]:
        if self.kind == "tracepoint":
            return ["hooks: syscalls:sys_enter_connect and sys_exit_connect tracepoints (as the book)"]
        return [HOOKS.describe(self.kind, ["connect"])]

    def row(self, ev: Connect) -> dict[str, Any]:
        raw = bytes(ev.sockaddr)
        family = int.from_bytes(raw[:2], "little")
        address = raw[4:8] if family == socket.AF_INET else raw[8:24]
        err = -ev.ret if ev.ret < 0 else 0
        return {
            "pid": ev.pid,
            "comm": ev.comm,
            "family": family,
            "address": str(ipaddress.ip_address(address)),
            "port": int.from_bytes(raw[2:4], "big"),
            "latency_us": ev.latency // 1000,
            "errno": errno.errorcode.get(err) if err else None,
            "result": result(err),
        }

    def header(self) -> str:
        return self.columns.header()

    def text(self, row: dict[str, Any]) -> str:
        return self.columns.line(row)


tool = SoConnect()

__all__ = ["BOOK_RESULTS", "Connect", "result", "tool"]
