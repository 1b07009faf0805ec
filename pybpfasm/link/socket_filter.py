"""Socket filters (``BPF_PROG_TYPE_SOCKET_FILTER``) on one socket: ``SO_ATTACH_BPF``."""

from __future__ import annotations

import socket

from ..prog import Program
from .base import DetachOnce

SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27  # SO_DETACH_FILTER


class SocketFilter(DetachOnce):
    """A program filtering what one socket receives; ``close()`` detaches it (the socket stays)."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock

    def _detach(self) -> None:
        if self.socket.fileno() >= 0:
            self.socket.setsockopt(socket.SOL_SOCKET, SO_DETACH_BPF, 0)


def attach_socket_filter(prog: Program, sock: socket.socket) -> SocketFilter:
    """Attach ``prog`` to ``sock``; it returns how many bytes of each packet to keep (0 drops)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog.fileno())
    return SocketFilter(sock)
