"""Cross-process locks on files in the cache (builds and guest slots)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on *path* (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def one_of(directory: Path, slots: int, poll: float = 0.5) -> Iterator[int]:
    """Hold one of *slots* numbered locks in *directory*; waits while all are taken."""
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in range(slots):
            fd = os.open(directory / f"slot{slot}", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield slot
            finally:
                os.close(fd)
            return
        time.sleep(poll)
