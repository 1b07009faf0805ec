"""Network namespaces and interfaces for attaching: enter a namespace by name, resolve a name."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator, Union

from pyroute2.netns import setns

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
            setns(netns, flags=0)
        except OSError as err:
            raise UsageError(f"cannot enter network namespace {netns!r}: "
                             f"{os.strerror(err.errno or 2)}") from None
        try:
            yield
        finally:
            setns(home, flags=0)
    finally:
        os.close(home)


def ifindex(interface: Interface) -> int:
    """The index of ``interface`` (a name or an index) in the current namespace."""
    if isinstance(interface, int):
        return interface
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise UsageError(f"no network interface {interface!r}") from None
