"""The BPF filesystem: pinning objects by path and opening pinned ones."""

from __future__ import annotations

import errno
import os

from .abi import ffi, libc
from .consts import Cmd
from .errors import SyscallError
from .fd import FD
from .syscall import address, bpf, new_attr

DEFAULT_ROOT = "/sys/fs/bpf"


def is_bpffs(path: str) -> bool:
    """Whether ``path`` is the mount point of a bpf filesystem."""
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        return any(
            fields[1] == real and fields[2] == "bpf"
            for fields in (line.split() for line in mounts)
        )


def ensure_mounted(root: str = DEFAULT_ROOT) -> None:
    """Mount bpffs on ``root`` unless one is there already."""
    if is_bpffs(root):
        return
    os.makedirs(root, exist_ok=True)
    if libc.mount(b"bpf", root.encode(), b"bpf", 0, ffi.NULL) != 0:
        raise SyscallError(f"mount bpffs on {root}", ffi.errno)


def _root_of(path: str) -> str:
    """The bpffs mount point ``path`` lives under, or the default one."""
    head = os.path.dirname(os.path.abspath(path))
    while head != "/":
        if is_bpffs(head):
            return head
        head = os.path.dirname(head)
    return DEFAULT_ROOT


def pin(fd: int, path: str) -> None:
    """Pin the object behind ``fd`` at ``path`` (mounting bpffs on /sys/fs/bpf if needed)."""
    if os.path.abspath(path).startswith(DEFAULT_ROOT + "/"):
        ensure_mounted(_root_of(path))
    name = ffi.new("char[]", os.fsencode(path))
    attr = new_attr()
    attr.obj.pathname = address(name)
    attr.obj.bpf_fd = fd
    try:
        bpf(Cmd.OBJ_PIN, attr)
    except SyscallError as err:
        if err.errno == errno.EEXIST:
            raise SyscallError(f"pin {path}", err.errno, "remove the existing pin first") from None
        raise SyscallError(f"pin {path}", err.errno, err.hint) from None


def open_pinned(path: str, flags: int = 0) -> FD:
    """Open the object pinned at ``path``."""
    name = ffi.new("char[]", os.fsencode(path))
    attr = new_attr()
    attr.obj.pathname = address(name)
    attr.obj.file_flags = flags
    try:
        return FD(bpf(Cmd.OBJ_GET, attr))
    except SyscallError as err:
        raise SyscallError(f"open pinned {path}", err.errno, err.hint) from None


def unpin(path: str) -> None:
    """Remove a pin (the object lives on while other references exist)."""
    os.unlink(path)
