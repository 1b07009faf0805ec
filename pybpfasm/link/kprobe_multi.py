"""kprobe_multi (5.18): one program on many kernel functions through a single ``bpf_link``.

The program is loaded with ``expected_attach_type=TRACE_KPROBE_MULTI``
(:func:`kprobe_multi_spec`).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import UsageError
from ..prog import Code, Program, ProgramSpec
from ..sys import AttachType, ProgType, address, ffi
from .base import FDLink, link_create

#: BPF_F_KPROBE_MULTI_RETURN
RETURN = 1 << 0


def kprobe_multi_spec(code: Code, **options: Any) -> ProgramSpec:
    """The load spec of a kprobe_multi program; ``options`` go to :class:`ProgramSpec`."""
    return ProgramSpec(ProgType.KPROBE, code, expected_attach_type=AttachType.TRACE_KPROBE_MULTI,
                       **options)


def attach_kprobe_multi(prog: Program, functions: Sequence[str], retprobe: bool = False,
                        cookies: Sequence[int] | None = None) -> FDLink:
    """Attach ``prog`` to every function in ``functions`` (on return with ``retprobe``)."""
    if not functions:
        raise UsageError("kprobe_multi needs at least one function")
    if cookies is not None and len(cookies) != len(functions):
        raise UsageError("kprobe_multi needs one cookie per function")
    names = [ffi.new("char[]", f.encode()) for f in functions]
    syms = ffi.new("uint64_t[]", [address(n) for n in names])
    cookie_buf = ffi.new("uint64_t[]", list(cookies)) if cookies is not None else ffi.NULL
    fd = link_create(prog.fileno(), 0, AttachType.TRACE_KPROBE_MULTI,
                     hint="kprobe_multi needs Linux 5.18+ with CONFIG_FPROBE, and functions "
                          "that exist and are not inlined",
                     kprobe_multi={"flags": RETURN if retprobe else 0, "cnt": len(functions),
                                   "syms": address(syms), "cookies": address(cookie_buf)})
    return FDLink(fd)
