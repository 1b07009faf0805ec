"""``pybpfasm sofamily``: accept() and connect() counted by process and address family
(the bpftrace book's sofamily).

Connects are counted on entry by the family of the address asked for, as the
book does; accepts when they return a socket, by the family of that socket
(the book reads the peer address the caller's buffer received, so it misses
accepts given no buffer).  Family names are the host's (Python's ``AF_*``).
The calls are seen at their syscall tracepoints, as in the book, or with
``--hook kprobe`` (and where the kernel has no syscall tracepoints) at kprobes
on the syscall wrappers.
"""

from __future__ import annotations

import argparse
from typing import Any

from pybpfasm.dsl import HashMap, ProgramDef, Record, char, u16, u64

from .common.metrics import Bounded, Family, counters
from .common.sockets import (
    Options,
    add_hook_argument,
    add_who_arguments,
    emit_who,
    family_name,
    socket_of_fd,
    who_and_hook,
)
from .common.summary import Summary, Totals, map_lines
from .common.syscalls import SyscallHooks


class Key(Record):
    comm: char[16]
    family: u16


accepts = HashMap(Key, u64, 10240, name="sofamily_acc")
connects = HashMap(Key, u64, 10240, name="sofamily_conn")
MAPS = {"accept": accepts, "connect": connects}


def _count(b, counts: HashMap, family) -> None:
    key = b.stack(Key, "the count's key")
    b.zero(key)
    b.get_current_comm(key.comm)
    key.family = family
    counts.increment(b, key)


def _connect(b, ctx, opts: Options, syscall: str) -> None:
    """Count a connect by the family of the address asked for."""
    from pybpfasm.dsl.types import Space

    emit_who(b, opts.only)
    _count(b, connects, ctx.uservaddr.cast("struct sockaddr", Space.USER).sa_family)


def _accept(b, ctx, opts: Options, syscall: str) -> None:
    """Count the socket an accept returned, by its family."""
    emit_who(b, opts.only)
    fd = ctx.ret.rvalue()
    with b.if_(fd >= 0):
        sock = socket_of_fd(b, fd)
        with b.if_(sock != 0):
            _count(b, accepts, sock.sk.rvalue().__sk_common.skc_family)


#: connect at entry, accept and accept4 at exit: their tracepoints, or kprobes on their wrappers
HOOKS = (SyscallHooks("sofam_", {"connect": ("fd", "uservaddr", "addrlen")}, enter=_connect),
         SyscallHooks("sofam_", {"accept": ("fd", "upeer_sockaddr", "upeer_addrlen"),
                                 "accept4": ("fd", "upeer_sockaddr", "upeer_addrlen", "flags")}, leave=_accept))


class SoFamily(Summary):
    """accept() and connect() by process and address family."""

    tracing = "socket connect/accepts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_who_arguments(parser)
        add_hook_argument(parser, SyscallHooks.KINDS, "the syscall tracepoints, as the book (auto: "
                          "where present), or kprobes on the syscall wrappers")

    def options(self, args: argparse.Namespace) -> Options:
        return who_and_hook(args)

    def programs(self, opts: Options) -> list[ProgramDef]:
        chosen = [hooks.choose(opts.hook) for hooks in HOOKS]
        self.kind, self.syscalls = chosen[0][0], [name for _, names, _ in chosen for name in names]
        return [p for _, _, programs in chosen for p in programs]

    def prepare(self, coll: Any, opts: Options) -> None:
        self.maps = {name: coll.map(decl) for name, decl in MAPS.items()}
        self.totals = {name: Totals() for name in MAPS}

    def notes(self, coll: Any, opts: Options) -> list[str]:
        if self.kind == "tracepoint":
            return ["hooks: syscalls:sys_enter_connect, sys_exit_accept and sys_exit_accept4 tracepoints"]
        return [SyscallHooks.describe(self.kind, self.syscalls)]

    def metrics(self) -> list[Family]:
        """The totals in the kernel's maps now (not only at exit); process names bounded."""
        self.bound = getattr(self, "bound", None) or Bounded()
        counts = [((call, key.comm, family_name(key.family)), n) for call, live in self.maps.items() for key, n in live.items()]
        return [counters("pybpfasm_socket_families_total", "accepts and connects, by process and address family",
                         ("call", "comm", "family"), counts, self.bound)]

    def summary(self, coll: Any, opts: Options) -> dict[str, Any]:
        out = {}
        for name, live in self.maps.items():
            gained = self.totals[name].gained({(key.comm, key.family): n for key, n in live.items()})
            out[name] = [{"comm": comm, "family": family, "name": family_name(family), "count": n}
                         for (comm, family), n in gained.items()]
        return out

    def summary_text(self, summary: dict[str, Any]) -> list[str]:
        lines = []
        for name, rows in summary.items():
            if rows:
                keys = (((r["comm"], r["family"], r["name"]), r["count"]) for r in rows)
                lines += ["", *map_lines(name, keys)]
        return lines


tool = SoFamily()

__all__ = ["Key", "tool"]
