"""What the socket tools share: the process filters (``-p PID``, ``-c COMM``), the
socket behind a file descriptor, and the names of address families and protocols.

The socket of a descriptor is found as the kernel's ``sock_from_file`` finds it,
from the current task: ``task->files->fdt->fd[fd]`` is a ``struct file`` whose
inode is a socket inode, and its ``private_data`` is the ``struct socket``.
Every step is a ``bpf_probe_read_kernel`` at offsets from this kernel's BTF, so
it works in any program type (syscall tracepoints included); a step that fails
reads as 0 and the result is 0.

Family and protocol names come from Python's :mod:`socket` module (the host's
own ``AF_*`` and ``IPPROTO_*`` tables), never from a list typed here.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import stat
from dataclasses import dataclass

from pybpfasm.dsl import char, u64

from . import options as types

#: the type bits of an inode's mode, and the type of a socket inode
S_IFMT = stat.S_IFMT(0o177777)
S_IFSOCK = stat.S_IFSOCK
#: bytes in a task's comm, its terminating NUL included
TASK_COMM_LEN = 16


def comm(text: str) -> bytes:
    """argparse type: a process name as the kernel keeps it (1-15 bytes)."""
    raw = os.fsencode(text)
    if not 0 < len(raw) < TASK_COMM_LEN or b"\0" in raw:
        raise argparse.ArgumentTypeError(
            f"{text[:20]!r} is not a process name (1-{TASK_COMM_LEN - 1} bytes, as the kernel keeps it)")
    return raw


@dataclass(frozen=True)
class Who:
    """Which processes a tool counts: one process id, one process name, or all."""

    pid: int | None = None
    comm: bytes | None = None


@dataclass(frozen=True)
class Options:
    """What a socket tool with hook alternatives builds its programs from."""

    only: Who
    hook: str = "auto"


def add_who_arguments(parser: argparse.ArgumentParser) -> None:
    """``-p PID`` and ``-c COMM``."""
    parser.add_argument("-p", "--pid", type=types.pid, help="only this process id")
    parser.add_argument("-c", "--comm", type=comm, help="only processes of this name")


def add_hook_argument(parser: argparse.ArgumentParser, kinds: list[str] | tuple[str, ...], what: str) -> None:
    """``--hook {auto,KIND...}``: *what* says where each kind hooks and which auto takes."""
    parser.add_argument("--hook", choices=("auto", *kinds), default="auto", help=what)


def who_and_hook(args: argparse.Namespace) -> Options:
    """The filters and the hook asked for."""
    return Options(who(args), args.hook)


def who(args: argparse.Namespace) -> Who:
    return Who(args.pid, args.comm)


def emit_who(b, only: Who) -> None:
    """Return from the program unless the current task is one *only* asks for
    (no code at all for a filter not given)."""
    if only.pid is not None:
        with b.if_((b.get_current_pid_tgid() >> 32) != only.pid):
            b.return_(0)
    if only.comm is not None:
        name = b.stack(char[TASK_COMM_LEN], "the task's comm")
        b.get_current_comm(name)
        with b.if_(name != only.comm):
            b.return_(0)


def socket_of_fd(b, fd):
    """The ``struct socket`` pointer behind descriptor *fd* of the current task
    (a kernel pointer, 0 when *fd* is not an open socket)."""
    sock = b.var(0)
    task = b.get_current_task().cast("struct task_struct")
    fdt = task.files.rvalue().fdt.rvalue()
    with b.if_(fd < fdt.max_fds):
        slot = fdt.fd.rvalue().at(fd * 8).cast(u64)
        file = slot.deref().rvalue().cast("struct file")
        with b.if_(file != 0):
            mode = file.f_inode.rvalue().i_mode.rvalue()
            with b.if_((mode & S_IFMT) == S_IFSOCK):
                sock.set(file.private_data.rvalue())
    return sock.cast("struct socket")


def family_name(family: int) -> str:
    """``AF_INET`` for 2: the host's name of an address family ('' if it has none;
    of two names for one family, Python's canonical one: AF_NETLINK, not AF_ROUTE)."""
    try:
        return socket.AddressFamily(family).name
    except ValueError:
        return ""


@functools.cache
def _protocols() -> dict[int, str]:
    """``{value: name}`` of the :mod:`socket` module's ``IPPROTO_*`` constants; of two
    names for one value the shorter wins (IPPROTO_IP, not IPPROTO_HOPOPTS, for 0)."""
    table: dict[int, str] = {}
    for name in sorted((n for n in dir(socket) if n.startswith("IPPROTO_")), key=lambda n: (len(n), n)):
        table.setdefault(getattr(socket, name), name)
    return table


def protocol_name(protocol: int) -> str:
    """``IPPROTO_TCP`` for 6: the host's name of an IP protocol ('' if it has none)."""
    return _protocols().get(protocol, "")
