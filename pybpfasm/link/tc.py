"""tc programs (``sched_cls``, direct action) on an interface's ingress or egress.

With tcx (6.6, found by :func:`.probes.tcx_link`) the program is a
``bpf_link`` with no qdisc at all. Older kernels get a ``clsact`` qdisc (made
if missing) and a ``cls_bpf`` direct-action filter through pyroute2, both
removed on ``close()`` (the qdisc only if this call created it).
"""

from __future__ import annotations

from ..errors import UsageError
from ..prog import Program
from ..sys import AttachType, SyscallError
from . import probes
from .base import DetachOnce, FDLink, Link, link_create
from .netns import Interface, entered, ifindex

#: direction -> (tcx attach type, clsact parent handle)
DIRECTIONS = {
    "ingress": (AttachType.TCX_INGRESS, 0xFFFF_FFF2),
    "egress": (AttachType.TCX_EGRESS, 0xFFFF_FFF3),
}
#: the cls_bpf filter's priority and handle (one filter of ours per direction)
FILTER_PRIO, FILTER_HANDLE = 0xC0DE, 1
ETH_P_ALL = 0x0003


class TCFilter(DetachOnce):
    """A cls_bpf filter under clsact; ``close()`` deletes it (and a clsact it created)."""

    def __init__(self, index: int, parent: int, made_qdisc: bool, netns: str | None) -> None:
        self.ifindex, self.parent, self.netns = index, parent, netns
        self._made_qdisc = made_qdisc

    def _detach(self) -> None:
        from pyroute2 import IPRoute  # netlink only when used: pyroute2 costs 0.3 s to import

        with entered(self.netns), IPRoute() as ipr:
            if self._made_qdisc:
                ipr.tc("del", "clsact", self.ifindex)
            else:
                ipr.tc("del-filter", "bpf", self.ifindex, FILTER_HANDLE, parent=self.parent,
                       prio=FILTER_PRIO, protocol=ETH_P_ALL)

    def __repr__(self) -> str:
        return f"<TCFilter ifindex={self.ifindex} parent={self.parent:#x} netns={self.netns!r}>"


def attach_tc(prog: Program, interface: Interface, direction: str = "ingress",
              netns: str | None = None, via: str = "auto") -> Link:
    """Attach a sched_cls program to ``interface`` (in ``netns``).

    ``via``: ``"auto"`` (tcx where the kernel has it), ``"tcx"`` or ``"netlink"``.
    """
    if direction not in DIRECTIONS:
        raise UsageError(f"unknown tc direction {direction!r} (ingress or egress)")
    if via not in ("auto", "tcx", "netlink"):
        raise UsageError(f"unknown attach method {via!r} (auto, tcx or netlink)")
    attach_type, parent = DIRECTIONS[direction]
    with entered(netns):
        index = ifindex(interface)
        if via == "tcx" or (via == "auto" and probes.tcx_link()):
            return FDLink(link_create(prog.fileno(), index, attach_type,
                                      hint="load the program with expected_attach_type "
                                           f"{attach_type.name} for tcx"))
        return _attach_cls_bpf(prog, index, parent, netns)


def _attach_cls_bpf(prog: Program, index: int, parent: int, netns: str | None) -> TCFilter:
    from pyroute2 import IPRoute  # netlink only when used: pyroute2 costs 0.3 s to import
    from pyroute2.netlink.exceptions import NetlinkError

    name = (prog.spec.name if prog.spec else "") or "pybpfasm"
    with IPRoute() as ipr:
        try:
            ipr.tc("add", "clsact", index)
            made = True
        except NetlinkError as err:
            if err.code != 17:  # EEXIST: an existing clsact is shared, never removed by us
                raise SyscallError("netlink: add clsact qdisc", err.code) from None
            made = False
        try:
            ipr.tc("add-filter", "bpf", index, FILTER_HANDLE, fd=prog.fileno(), name=name,
                   parent=parent, prio=FILTER_PRIO, protocol=ETH_P_ALL, direct_action=True)
        except NetlinkError as err:
            if made:
                ipr.tc("del", "clsact", index)
            raise SyscallError("netlink: add cls_bpf filter", err.code,
                               "another filter of ours may be there already") from None
    return TCFilter(index, parent, made, netns)
