"""Which kinds of ``bpf_link`` this kernel can create, asked of the kernel itself.

Each probe loads a trivial program and calls BPF_LINK_CREATE with a target
that cannot exist. A kernel that knows the link kind rejects the *target*
(EBADF for a bad descriptor, ENODEV for a bad interface index); one that does
not rejects the attach type (EINVAL). Nothing is ever attached.
"""

from __future__ import annotations

import errno
import functools

from ..prog import ProgramSpec
from ..sys import AttachType, ProgType, SyscallError
from .base import link_create

#: an interface index no interface has
_NO_IFINDEX = 0xFFFF_FFFF


def _target_rejected(prog: ProgType, attach: AttachType, target: int, answer: int,
                     **spec: object) -> bool:
    from ..isa import Mov, exit_

    with ProgramSpec(prog, [Mov.imm(0, 0), exit_()], name="link_probe", **spec).load() as p:
        try:
            link_create(p.fileno(), target, attach).close()
        except SyscallError as err:
            if err.errno == errno.EPERM:
                raise
            return err.errno == answer
    return True


@functools.cache
def perf_event_link() -> bool:
    """BPF_LINK_TYPE_PERF_EVENT (5.15): tracepoints and kprobes attached as links."""
    return _target_rejected(ProgType.TRACEPOINT, AttachType.PERF_EVENT, -1 & 0xFFFF_FFFF,
                            errno.EBADF)


@functools.cache
def tcx_link() -> bool:
    """BPF_LINK_TYPE_TCX (6.6): tc programs without qdiscs or filters."""
    return _target_rejected(ProgType.SCHED_CLS, AttachType.TCX_INGRESS, _NO_IFINDEX, errno.ENODEV,
                            expected_attach_type=AttachType.TCX_INGRESS)


@functools.cache
def cgroup_link() -> bool:
    """BPF_LINK_TYPE_CGROUP (5.7): cgroup programs as links."""
    return _target_rejected(ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS,
                            -1 & 0xFFFF_FFFF, errno.EBADF,
                            expected_attach_type=AttachType.CGROUP_INET_INGRESS)
