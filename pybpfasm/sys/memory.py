"""Shared memory with the kernel: ``mmap()`` of BPF map and perf-event descriptors."""

from __future__ import annotations

import mmap as _mmap

from .abi import ffi, libc
from .errors import SyscallError

_MAP_FAILED = ffi.cast("void *", -1)


class Mapping:
    """Owns one ``mmap()`` region; ``buffer`` is a writable view of its bytes."""

    def __init__(self, fd: int, size: int, writable: bool = True, offset: int = 0) -> None:
        prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
        ptr = libc.mmap(ffi.NULL, size, prot, _mmap.MAP_SHARED, fd, offset)
        if ptr == _MAP_FAILED:
            raise SyscallError("mmap", ffi.errno)
        self._ptr = ptr
        self.size = size
        self.buffer = ffi.buffer(ffi.cast("char *", ptr), size)

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        """Unmap the region; any view of ``buffer`` must not be used afterwards."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self.buffer = None
            libc.munmap(ptr, self.size)

    def __enter__(self) -> Mapping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
