"""XDP programs on a network interface: a ``bpf_link`` (5.9), netlink ``IFLA_XDP`` otherwise.

``mode`` is ``"skb"`` (generic XDP, every driver), ``"native"`` (in the
driver) or None (native where the driver has it). A link detaches when its
last descriptor closes; a netlink attachment is removed by ``close()``.
"""

from __future__ import annotations

import errno

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..errors import UsageError
from ..prog import Program
from ..sys import AttachType, SyscallError
from .base import FDLink, Link, link_create
from .netns import Interface, entered, ifindex

#: XDP_FLAGS_* of a mode
MODES = {None: 0, "skb": 1 << 1, "native": 1 << 2}
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0


def _flags(mode: str | None) -> int:
    try:
        return MODES[mode]
    except KeyError:
        raise UsageError(f"unknown XDP mode {mode!r} (skb, native or None)") from None


class XDPNetlink(Link):
    """An XDP program set through netlink; ``close()`` removes it from the interface."""

    def __init__(self, index: int, flags: int, netns: str | None) -> None:
        self.ifindex, self.flags, self.netns = index, flags, netns
        self._attached = True

    @property
    def closed(self) -> bool:
        return not self._attached

    def close(self) -> None:
        if self._attached:
            self._attached = False
            with entered(self.netns):
                _set_xdp_fd(self.ifindex, -1, self.flags)

    def __repr__(self) -> str:
        return f"<XDPNetlink ifindex={self.ifindex} netns={self.netns!r}>"


def _set_xdp_fd(index: int, fd: int, flags: int) -> None:
    attrs = [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]
    with IPRoute() as ipr:
        ipr.link("set", index=index, xdp={"attrs": attrs})


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
        except NetlinkError as err:
            raise SyscallError(f"netlink IFLA_XDP on {interface!r}", err.code,
                               _hint(interface)) from None
        return XDPNetlink(index, flags, netns)


def _hint(interface: Interface) -> str:
    return (f"is another XDP program attached to {interface!r} or does its driver lack this "
            "mode? (try mode='skb')")
