"""``pybpfasm soprotocol``: accept() and connect() counted by process and transport protocol
(the bpftrace book's soprotocol).

The book reads the socket at the ``security_socket_accept``/``security_socket_connect``
kprobes, and so does this where the kernel has kprobes.  Elsewhere the socket
is reached from the descriptor the syscall is given (the current task's file
table, read at this kernel's BTF offsets), on entry to accept, accept4 and
connect, so every such call on a socket counts, as at the book's kprobes.  The protocol is ``sk->sk_protocol`` (its name the host's
``IPPROTO_*``) and the kernel's name for it ``sk->sk_prot->name`` (TCP,
TCPv6, UDP, UNIX-STREAM...).  Unlike the book, accepts and connects are
counted apart.
"""

from __future__ import annotations

import argparse
from typing import Any

from pybpfasm.dsl import HashMap, ProgramDef, Record, char, kprobe, tracepoint, u16, u64

from .common.hookset import HookSet
from .common.metrics import Bounded, Family, counters
from .common.sockets import (
    Options,
    add_hook_argument,
    add_who_arguments,
    emit_who,
    protocol_name,
    socket_of_fd,
    who_and_hook,
)
from .common.summary import Summary, Totals, map_lines

#: bytes of struct proto's name
PROTO_NAME = 32


class Key(Record):
    comm: char[16]
    kernel_name: char[PROTO_NAME]
    protocol: u16


accepts = HashMap(Key, u64, 10240, name="soproto_acc")
connects = HashMap(Key, u64, 10240, name="soproto_conn")
#: map name -> (declaration, the syscalls it counts, the book's kprobe for it)
MAPS = {"accept": (accepts, ("accept", "accept4"), "security_socket_accept"),
        "connect": (connects, ("connect",), "security_socket_connect")}


def _count(b, counts: HashMap, sock) -> None:
    """Count the call by the protocol of *sock* (a struct socket pointer, 0: not a socket)."""
    with b.if_(sock != 0):
        sk = sock.sk.rvalue()
        with b.if_(sk != 0):
            key = b.stack(Key, "the count's key")
            b.zero(key)
            b.get_current_comm(key.comm)
            key.protocol = sk.sk_protocol
            key.kernel_name = sk.__sk_common.skc_prot.name
            counts.increment(b, key)


def syscall_counter(syscall: str, counts: HashMap) -> ProgramDef:
    """Count entries to *syscall* in *counts*, by the socket its fd names."""

    def count(b, ctx, opts: Options):
        emit_who(b, opts.only)
        _count(b, counts, socket_of_fd(b, ctx.fd.rvalue()))

    count.__name__ = f"soproto_{syscall}"
    count.__qualname__ = f"count[{syscall}]"
    return tracepoint("syscalls", f"sys_enter_{syscall}")(count)


def kprobe_counter(function: str, counts: HashMap) -> ProgramDef:
    """Count calls of *function* (its first argument a struct socket) in *counts*, as the book."""

    def count(b, ctx, opts: Options):
        emit_who(b, opts.only)
        _count(b, counts, ctx.arg(0).cast("struct socket"))

    count.__name__ = f"soproto_k{function.removeprefix('security_socket_')}"
    count.__qualname__ = f"count[{function}]"
    return kprobe(function)(count)


HOOKS = HookSet(
    kprobe=[kprobe_counter(function, decl) for decl, _, function in MAPS.values()],
    tracepoint=[syscall_counter(syscall, decl) for decl, syscalls, _ in MAPS.values()
                for syscall in syscalls])


class SoProtocol(Summary):
    """accept() and connect() by process and protocol."""

    tracing = "socket connect/accepts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_who_arguments(parser)
        add_hook_argument(parser, HOOKS.kinds, "the book's security_socket_accept/connect kprobes "
                          "(auto: where the kernel has them) or the syscall tracepoints")

    def options(self, args: argparse.Namespace) -> Options:
        return who_and_hook(args)

    def programs(self, opts: Options) -> list[ProgramDef]:
        self.hook = HOOKS.choose(opts.hook)
        return self.hook.programs

    def prepare(self, coll: Any, opts: Options) -> None:
        self.maps = {name: coll.map(decl) for name, (decl, _, _) in MAPS.items()}
        self.totals = {name: Totals() for name in MAPS}

    def notes(self, coll: Any, opts: Options) -> list[str]:
        if self.hook.kind == "kprobe":
            return ["hooks: the book's security_socket_accept and security_socket_connect kprobes"]
        why = "".join(f" ({kind}s: {why})" for kind, why in self.hook.passed_over.items())
        return ["hooks: syscalls:sys_enter_accept, sys_enter_accept4 and sys_enter_connect "
                f"tracepoints, the socket read from the task's file table{why}"]

    def metrics(self) -> list[Family]:
        """The totals in the kernel's maps now (not only at exit); process names bounded."""
        self.bound = getattr(self, "bound", None) or Bounded()
        counts = [((call, key.comm, protocol_name(key.protocol)), n) for call, live in self.maps.items() for key, n in live.items()]
        return [counters("pybpfasm_socket_protocols_total", "accepts and connects, by process and protocol",
                         ("call", "comm", "protocol"), counts, self.bound)]

    def summary(self, coll: Any, opts: Options) -> dict[str, Any]:
        out = {}
        for name, live in self.maps.items():
            now = {(key.comm, key.protocol, key.kernel_name): n for key, n in live.items()}
            out[name] = [{"comm": comm, "protocol": proto, "name": protocol_name(proto),
                          "kernel_name": kname, "count": n}
                         for (comm, proto, kname), n in self.totals[name].gained(now).items()]
        return out

    def summary_text(self, summary: dict[str, Any]) -> list[str]:
        lines = []
        for name, rows in summary.items():
            if rows:
                keys = (((r["comm"], r["protocol"], r["name"], r["kernel_name"]), r["count"]) for r in rows)
                lines += ["", *map_lines(name, keys)]
        return lines


tool = SoProtocol()

__all__ = ["Key", "tool"]
