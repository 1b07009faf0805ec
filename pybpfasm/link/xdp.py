"""XDP programs on a network interface: a ``bpf_link`` (5.9), netlink ``IFLA_XDP`` otherwise.

``mode`` is ``"skb"`` (generic XDP, every driver), ``"native"`` (in the
driver) or None (native where the driver has it). A link detaches when its
last descriptor closes; a netlink attachment is removed by ``close()``.
The one netlink request needed (RTM_SETLINK with a nested ``IFLA_XDP``) is
built here, so it does not depend on how a pyroute2 version encodes it.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from ..errors import UsageError
from ..prog import Program
from ..sys import AttachType, SyscallError
from .base import DetachOnce, FDLink, Link, link_create
from .netns import Interface, entered, ifindex

#: XDP_FLAGS_* of a mode
MODES = {None: 0, "skb": 1 << 1, "native": 1 << 2}
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0


def _flags(mode: str | None) -> int:
    try:
        return MODES[mode]
    except KeyError:
        raise UsageError(f"unknown XDP mode {mode!r} (skb, native or None)") from None


class XDPNetlink(DetachOnce):
    """An XDP program set through netlink; ``close()`` removes it from the interface."""

    def __init__(self, index: int, flags: int, netns: str | None) -> None:
        self.ifindex, self.flags, self.netns = index, flags, netns

    def _detach(self) -> None:
        with entered(self.netns):
            _set_xdp_fd(self.ifindex, -1, self.flags)

    def __repr__(self) -> str:
        return f"<XDPNetlink ifindex={self.ifindex} netns={self.netns!r}>"


RTM_SETLINK, NLMSG_ERROR = 19, 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
IFLA_XDP, IFLA_XDP_FD, IFLA_XDP_FLAGS = 43, 1, 3
NLA_F_NESTED = 1 << 15


def _nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + bytes(-len(data) % 4)


def _set_xdp_fd(index: int, fd: int, flags: int) -> None:
    """RTM_SETLINK ``IFLA_XDP {FD, FLAGS}`` on interface ``index`` (fd -1 removes); raises OSError."""
    xdp = _nla(IFLA_XDP | NLA_F_NESTED, _nla(IFLA_XDP_FD, struct.pack("=i", fd))
               + _nla(IFLA_XDP_FLAGS, struct.pack("=I", flags)))
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0) + xdp
    header = struct.pack("=IHHII", 16 + len(body), RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.sendto(header + body, (0, 0))
        reply = sock.recv(65536)
    _length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", reply)
    if kind == NLMSG_ERROR:
        err = -struct.unpack_from("=i", reply, 16)[0]
        if err:
            raise OSError(err, os.strerror(err))


def attach_xdp(prog: Program, interface: Interface, mode: str | None = None,
               netns: str | None = None, via: str = "auto") -> Link:
    """Attach ``prog`` to ``interface`` (in ``netns``).

    ``via`` is ``"auto"`` (a link; netlink only on kernels that refuse XDP
    links with EINVAL before attaching), ``"link"`` or ``"netlink"``.
    """
    flags = _flags(mode)
    if via not in ("auto", "link", "netlink"):
        raise UsageError(f"unknown attach method {via!r} (auto, link or netlink)")
    with entered(netns):
        index = ifindex(interface)
        if via != "netlink":
            try:
                return FDLink(link_create(prog.fileno(), index, AttachType.XDP, flags,
                                          hint=_hint(interface)))
            except SyscallError as err:
                if via == "link" or err.errno != errno.EINVAL:
                    raise
        try:
            _set_xdp_fd(index, prog.fileno(), flags | XDP_FLAGS_UPDATE_IF_NOEXIST)
        except OSError as err:
            raise SyscallError(f"netlink IFLA_XDP on {interface!r}", err.errno,
                               _hint(interface)) from None
        return XDPNetlink(index, flags, netns)


def _hint(interface: Interface) -> str:
    return (f"is another XDP program attached to {interface!r} or does its driver lack this "
            "mode? (try mode='skb')")
