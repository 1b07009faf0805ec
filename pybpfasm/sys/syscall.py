"""The raw system calls: ``bpf()``, ``perf_event_open()`` and ``ioctl()``, through cffi."""

from __future__ import annotations

import os
from typing import Any

from .abi import ffi, libc
from .consts import Cmd
from .errors import SyscallError
from .fd import FD

#: machine name (``uname -m``) -> (__NR_bpf, __NR_perf_event_open)
SYSCALL_NUMBERS: dict[str, tuple[int, int]] = {
    "x86_64": (321, 298),
    "aarch64": (280, 241),
    "arm64": (280, 241),
    "riscv64": (280, 241),
    "loongarch64": (280, 241),
    "armv6l": (386, 364),
    "armv7l": (386, 364),
    "armv8l": (386, 364),
    "ppc64le": (361, 319),
    "ppc64": (361, 319),
    "s390x": (351, 331),
}


def _numbers() -> tuple[int, int]:
    machine = os.uname().machine
    try:
        return SYSCALL_NUMBERS[machine]
    except KeyError:
        raise SyscallError("bpf", 38, f"unsupported architecture {machine!r}") from None


NR_BPF, NR_PERF_EVENT_OPEN = _numbers()

#: the size passed with every bpf() call: the whole union as declared in :mod:`.abi`
ATTR_SIZE = ffi.sizeof("union bpf_attr")


# the variadic syscall() needs typed arguments: the fixed ones are cast once
_NR_BPF = ffi.cast("long", NR_BPF)
_ATTR_SIZE = ffi.cast("unsigned int", ATTR_SIZE)
_CMDS = {cmd: ffi.cast("int", cmd) for cmd in Cmd}


def new_attr() -> Any:
    """A zeroed ``union bpf_attr``; members are named as in :mod:`.abi`."""
    return ffi.new("union bpf_attr *")


def address(buf: Any) -> int:
    """The address of a cffi buffer, as the ``__u64`` the kernel expects for pointers."""
    return int(ffi.cast("uintptr_t", buf))


def bpf(cmd: Cmd, attr: Any, hint: str | None = None) -> int:
    """Call ``bpf(cmd, attr, sizeof(attr))``; raise :class:`SyscallError` on failure.

    ``hint`` replaces the generic advice attached to the error.
    """
    ret = libc.syscall(_NR_BPF, _CMDS[cmd], attr, _ATTR_SIZE)
    if ret < 0:
        raise SyscallError(f"BPF_{Cmd(cmd).name}", ffi.errno, hint)
    return int(ret)


def bpf_fd(cmd: Cmd, attr: Any, hint: str | None = None) -> FD:
    """Call a bpf() command that returns a new file descriptor, owned by the returned :class:`FD`."""
    return FD(bpf(cmd, attr, hint))


def object_info(fd: int, ctype: str) -> Any:
    """``BPF_OBJ_GET_INFO_BY_FD`` into a new ``ctype`` (``"struct bpf_map_info"`` ...)."""
    info = ffi.new(f"{ctype} *")
    attr = new_attr()
    attr.info.bpf_fd = fd
    attr.info.info_len = ffi.sizeof(info[0])
    attr.info.info = address(info)
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return info


def perf_event_open(attr: Any, pid: int, cpu: int, group_fd: int = -1, flags: int = 0) -> FD:
    """``perf_event_open(2)`` with a ``struct perf_event_attr *`` (its ``size`` is filled in)."""
    attr.size = ffi.sizeof("struct perf_event_attr")
    ret = libc.syscall(
        ffi.cast("long", NR_PERF_EVENT_OPEN),
        attr,
        ffi.cast("int", pid),
        ffi.cast("int", cpu),
        ffi.cast("int", group_fd),
        ffi.cast("unsigned long", flags),
    )
    if ret < 0:
        raise SyscallError("perf_event_open", ffi.errno)
    return FD(int(ret))


def ioctl(fd: int, request: int, arg: int = 0) -> int:
    """``ioctl(fd, request, arg)`` with an integer argument (perf-event ioctls)."""
    ret = libc.ioctl(fd, ffi.cast("unsigned long", request), ffi.cast("unsigned long", arg))
    if ret < 0:
        raise SyscallError(f"ioctl({request:#x})", ffi.errno)
    return int(ret)
