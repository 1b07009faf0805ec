"""cgroup programs (``cgroup_skb`` and the other cgroup types) on a cgroup v2 directory.

A ``bpf_link`` where the kernel has cgroup links (5.7, :func:`.probes.cgroup_link`);
otherwise BPF_PROG_ATTACH with ``BPF_F_ALLOW_MULTI`` and BPF_PROG_DETACH on
``close()``.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import UsageError
from ..prog import Program
from ..sys import FD, AttachType, Cmd, bpf, new_attr
from . import probes
from .base import FDLink, Link, link_create

BPF_F_ALLOW_MULTI = 1 << 1


class CgroupAttachment(Link):
    """A program attached with BPF_PROG_ATTACH; ``close()`` detaches it."""

    def __init__(self, cgroup: FD, prog: Program, attach_type: AttachType) -> None:
        self.cgroup, self.prog, self.attach_type = cgroup, prog, attach_type

    @property
    def closed(self) -> bool:
        return self.cgroup.closed

    def close(self) -> None:
        if self.cgroup.closed:
            return
        try:
            bpf(Cmd.PROG_DETACH, _attr(self.cgroup, self.prog, self.attach_type))
        finally:
            self.cgroup.close()


def _attr(cgroup: FD, prog: Program, attach_type: AttachType, flags: int = 0) -> Any:
    attr = new_attr()
    a = attr.attach
    a.target_fd, a.attach_bpf_fd, a.attach_type, a.attach_flags = (
        cgroup.fileno(), prog.fileno(), attach_type, flags)
    return attr


def open_cgroup(path: str) -> FD:
    """A descriptor of cgroup directory ``path``."""
    try:
        return FD(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
    except OSError as err:
        raise UsageError(f"cannot open cgroup {path}: {err.strerror}") from None


def attach_cgroup(prog: Program, cgroup_path: str, attach_type: AttachType,
                  via: str = "auto") -> Link:
    """Attach ``prog`` to the cgroup v2 directory ``cgroup_path`` at ``attach_type``.

    ``via``: ``"auto"`` (a link where the kernel has cgroup links), ``"link"`` or ``"attach"``.
    """
    if via not in ("auto", "link", "attach"):
        raise UsageError(f"unknown attach method {via!r} (auto, link or attach)")
    cgroup = open_cgroup(cgroup_path)
    if via == "link" or (via == "auto" and probes.cgroup_link()):
        with cgroup:
            return FDLink(link_create(prog.fileno(), cgroup.fileno(), attach_type,
                                      hint="is it a cgroup v2 directory, and was the program "
                                           "loaded with this expected_attach_type?"))
    try:
        bpf(Cmd.PROG_ATTACH, _attr(cgroup, prog, attach_type, BPF_F_ALLOW_MULTI))
    except BaseException:
        cgroup.close()
        raise
    return CgroupAttachment(cgroup, prog, attach_type)
