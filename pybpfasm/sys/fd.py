"""File-descriptor ownership: every kernel object pybpfasm opens is held by an :class:`FD`."""

from __future__ import annotations

import os
from typing import TypeVar

from ..errors import BPFError


class ClosedError(BPFError):
    """An object was used after ``close()``."""


class FD:
    """Owns one file descriptor: ``close()``, a context manager and a ``__del__`` safety net."""

    __slots__ = ("__weakref__", "_fd")

    def __init__(self, fd: int) -> None:
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        self._fd = fd

    def fileno(self) -> int:
        """The raw descriptor number; raises :class:`ClosedError` once closed."""
        if self._fd < 0:
            raise ClosedError("file descriptor used after close()")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Close the descriptor; closing twice is harmless."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> FD:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FD({self._fd})" if self._fd >= 0 else "FD(closed)"


_Self = TypeVar("_Self", bound="FDOwner")


class FDOwner:
    """Base of objects that own one kernel object through an :class:`FD` in ``self._fd``."""

    _fd: FD

    def fileno(self) -> int:
        return self._fd.fileno()

    def close(self) -> None:
        self._fd.close()

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
