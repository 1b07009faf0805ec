"""Raw tracepoints (``BPF_PROG_TYPE_RAW_TRACEPOINT``): the tracepoint's arguments, unformatted.

BPF_RAW_TRACEPOINT_OPEN returns a ``bpf_link`` descriptor on every kernel
that has it (4.17+). Without a name it attaches a BTF-typed tracing program
(tp_btf, fentry, fexit, fmod_ret, lsm) to the target it was loaded for.
"""

from __future__ import annotations

from ..prog import Program
from ..sys import Cmd, address, bpf_fd, ffi, new_attr
from .base import FDLink


def raw_tracepoint_open(prog: Program, name: str | None = None, cookie: int = 0) -> FDLink:
    """BPF_RAW_TRACEPOINT_OPEN: attach ``prog`` to ``name`` (or to its load-time BTF target)."""
    buf = ffi.new("char[]", name.encode()) if name is not None else ffi.NULL
    attr = new_attr()
    attr.raw_tracepoint.name = address(buf)
    attr.raw_tracepoint.prog_fd = prog.fileno()
    attr.raw_tracepoint.cookie = cookie
    what = f"raw tracepoint {name!r}" if name else "its BTF target"
    return FDLink(bpf_fd(Cmd.RAW_TRACEPOINT_OPEN, attr,
                         hint=f"cannot attach to {what}: check the name (tracefs events/) "
                              "and the program type"))


def attach_raw_tracepoint(prog: Program, name: str, cookie: int = 0) -> FDLink:
    """Attach a raw tracepoint program to tracepoint ``name`` (``"kfree_skb"``, no category)."""
    return raw_tracepoint_open(prog, name, cookie)
