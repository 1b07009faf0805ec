"""Attach points, one module per kind; every attachment is a :class:`Link` detached by ``close()``.

Links (``bpf_link``) come first wherever the kernel has them, chosen by
asking the kernel (:mod:`.probes`), so that a process that dies, even by
SIGKILL, leaves nothing attached::

    with attach_tracepoint(prog, "skb", "kfree_skb"):
        ...
    attach_xdp(prog, "veth0", mode="skb", netns="lab1")
    attach_tc(prog, "veth0", "ingress", netns="lab1")
"""

from __future__ import annotations

from .base import FDLink, Link
from .cgroup import CgroupAttachment, attach_cgroup
from .fentry import attach_fentry, fentry_spec, func_btf_id
from .kprobe import KprobeError, attach_kprobe, kprobes_available
from .kprobe_multi import attach_kprobe_multi, kprobe_multi_spec
from .perf_event import PerfEventLink
from .raw_tracepoint import attach_raw_tracepoint
from .socket_filter import SocketFilter, attach_socket_filter
from .tc import TCFilter, attach_tc
from .tp_btf import attach_tp_btf, tp_btf_id, tp_btf_spec
from .tracepoint import attach_tracepoint
from .xdp import XDPNetlink, attach_xdp

__all__ = [
    "CgroupAttachment", "FDLink", "KprobeError", "Link", "PerfEventLink", "SocketFilter",
    "TCFilter", "XDPNetlink", "attach_cgroup", "attach_fentry", "attach_kprobe",
    "attach_kprobe_multi", "attach_raw_tracepoint", "attach_socket_filter", "attach_tc",
    "attach_tp_btf", "attach_tracepoint", "attach_xdp", "fentry_spec", "func_btf_id",
    "kprobe_multi_spec", "kprobes_available", "tp_btf_id", "tp_btf_spec",
]
