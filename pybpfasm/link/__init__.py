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

import importlib
from typing import Any

#: public name -> the submodule that defines it; a submodule is imported on first use
_EXPORTS = {
    "FDLink": "base", "Link": "base",
    "CgroupAttachment": "cgroup", "attach_cgroup": "cgroup",
    "attach_fentry": "fentry", "fentry_spec": "fentry", "func_btf_id": "fentry",
    "KprobeError": "kprobe", "attach_kprobe": "kprobe", "kprobes_available": "kprobe",
    "attach_kprobe_multi": "kprobe_multi", "kprobe_multi_spec": "kprobe_multi",
    "attach_netfilter": "netfilter",
    "PerfEventLink": "perf_event",
    "attach_raw_tracepoint": "raw_tracepoint",
    "SocketFilter": "socket_filter", "attach_socket_filter": "socket_filter",
    "TCFilter": "tc", "attach_tc": "tc",
    "attach_tp_btf": "tp_btf", "tp_btf_id": "tp_btf", "tp_btf_spec": "tp_btf",
    "attach_tracepoint": "tracepoint",
    "XDPNetlink": "xdp", "attach_xdp": "xdp",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
