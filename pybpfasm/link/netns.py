"""Network namespaces and interfaces for attaching: enter a namespace by name, resolve a name."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator, Union

from ..errors import UsageError

Interface = Union[str, int]


@contextlib.contextmanager
def entered(netns: str | None) -> Iterator[None]:
    """Run the block in network namespace ``netns`` (this thread only); None: stay here."""
    if netns is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            target = os.open(f"/run/netns/{netns}" if "/" not in netns else netns, os.O_RDONLY)
        except OSError as err:
            raise UsageError(f"cannot enter network namespace {netns!r}: {err.strerror}") from None
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def _setns(fd: int) -> None:
    """Move this thread into the network namespace *fd* refers to."""
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    from ..sys.abi import ffi, libc

    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ffi.errno, os.strerror(ffi.errno))


CLONE_NEWNET = 0x40000000


def ifindex(interface: Interface) -> int:
    """The index of ``interface`` (a name or an index) in the current namespace."""
    if isinstance(interface, int):
        return interface
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise UsageError(f"no network interface {interface!r}") from None
