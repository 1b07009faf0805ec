"""System-call layer: cffi ABI-mode ``bpf()``, ``perf_event_open()``, ``ioctl``, ``mmap``.

The ``bpf_attr`` layouts are the one cdef in :mod:`.abi`; the kernel's
enumerations are the tables in :mod:`.consts`.
"""

from __future__ import annotations

from .abi import ffi
from .bpffs import ensure_mounted, open_pinned, pin, unpin
from .consts import AttachType, Cmd, LinkType, MapFlag, MapType, ProgFlag, ProgType, UpdateFlag
from .errors import SyscallError
from .fd import FD, ClosedError, FDOwner
from .memory import Mapping
from .rlimit import raise_memlock
from .syscall import address, bpf, bpf_fd, ioctl, new_attr, object_info, perf_event_open

__all__ = [
    "FD",
    "AttachType",
    "ClosedError",
    "Cmd",
    "FDOwner",
    "LinkType",
    "MapFlag",
    "MapType",
    "Mapping",
    "ProgFlag",
    "ProgType",
    "SyscallError",
    "UpdateFlag",
    "address",
    "bpf",
    "bpf_fd",
    "ensure_mounted",
    "ffi",
    "ioctl",
    "new_attr",
    "object_info",
    "open_pinned",
    "perf_event_open",
    "pin",
    "raise_memlock",
    "unpin",
]
