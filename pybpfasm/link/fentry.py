"""fentry/fexit/fmod_ret: tracing programs on kernel function entry and exit (BPF trampolines).

Loaded as ``BPF_PROG_TYPE_TRACING`` with ``attach_btf_id`` naming the
function's ``FUNC`` in kernel BTF (see :func:`fentry_spec`) and attached with
BPF_RAW_TRACEPOINT_OPEN, which returns a ``bpf_link``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..prog import Code, Program, ProgramSpec
from ..sys import AttachType, ProgType
from .base import FDLink
from .raw_tracepoint import raw_tracepoint_open

if TYPE_CHECKING:
    from ..btf import BTF

#: kind -> expected attach type
KINDS = {
    "fentry": AttachType.TRACE_FENTRY,
    "fexit": AttachType.TRACE_FEXIT,
    "fmod_ret": AttachType.MODIFY_RETURN,
}


def func_btf_id(function: str, btf: BTF | None = None) -> int:
    """Kernel BTF id of the ``FUNC`` ``function``."""
    from ..btf import BTF, BTFError, Kind

    try:
        return (btf or BTF.kernel()).lookup(function, [Kind.FUNC])
    except BTFError as err:
        raise UsageError(f"no kernel function {function!r} in BTF: {err}") from None


def fentry_spec(function: str, code: Code, kind: str = "fentry", **options: Any) -> ProgramSpec:
    """The load spec of an fentry/fexit/fmod_ret program on ``function``; ``options`` go to
    :class:`ProgramSpec`."""
    if kind not in KINDS:
        raise UsageError(f"unknown tracing kind {kind!r} (one of {', '.join(KINDS)})")
    options.setdefault("name", function)
    return ProgramSpec(ProgType.TRACING, code, expected_attach_type=KINDS[kind],
                       attach_btf_id=func_btf_id(function), **options)


def attach_fentry(prog: Program, cookie: int = 0) -> FDLink:
    """Attach a loaded fentry/fexit/fmod_ret program to the function it was loaded for."""
    return raw_tracepoint_open(prog, None, cookie)
