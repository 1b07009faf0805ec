"""``pybpfasm sofamily``: accept() and connect() counted by process and address family
(the bpftrace book's sofamily).

Connects are counted on entry by the family of the address asked for, as the
book does; accepts when they return a socket, by the family of that socket
(the book reads the peer address the caller's buffer received, so it misses
accepts given no buffer).  Family names are the host's (Python's ``AF_*``).
"""

from __future__ import annotations

import argparse
from typing import Any

from pybpfasm.dsl import HashMap, ProgramDef, Record, char, tracepoint, u16, u64

from .common.sockets import Who, add_who_arguments, emit_who, family_name, socket_of_fd, who
from .common.summary import Summary, Totals, map_lines


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


@tracepoint("syscalls", "sys_enter_connect")
def sofamily_conn(b, ctx, only: Who):
    from pybpfasm.dsl.types import Space

    emit_who(b, only)
    _count(b, connects, ctx.uservaddr.cast("struct sockaddr", Space.USER).sa_family)


def accept_program(syscall: str) -> ProgramDef:
    """Count the socket *syscall* (accept or accept4) returns, by its family."""

    def count(b, ctx, only: Who):
        emit_who(b, only)
        fd = ctx.ret.rvalue()
        with b.if_(fd >= 0):
            sock = socket_of_fd(b, fd)
            with b.if_(sock != 0):
                _count(b, accepts, sock.sk.rvalue().__sk_common.skc_family)

    count.__name__ = f"sofamily_{syscall}"
    count.__qualname__ = f"count[{syscall}]"
    return tracepoint("syscalls", f"sys_exit_{syscall}")(count)


PROGRAMS = [sofamily_conn, accept_program("accept"), accept_program("accept4")]


class SoFamily(Summary):
    """accept() and connect() by process and address family."""

    tracing = "socket connect/accepts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_who_arguments(parser)

    def options(self, args: argparse.Namespace) -> Who:
        return who(args)

    def programs(self, only: Who) -> list[ProgramDef]:
        return PROGRAMS

    def prepare(self, coll: Any, only: Who) -> None:
        self.maps = {name: coll.map(decl) for name, decl in MAPS.items()}
        self.totals = {name: Totals() for name in MAPS}

    def notes(self, coll: Any, only: Who) -> list[str]:
        return ["hooks: syscalls:sys_enter_connect, sys_exit_accept and sys_exit_accept4 tracepoints"]

    def summary(self, coll: Any, only: Who) -> dict[str, Any]:
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
