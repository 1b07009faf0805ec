"""BTF-enabled tracepoints (``tp_btf``): typed arguments, direct pointer loads.

A tp_btf program is a ``BPF_PROG_TYPE_TRACING`` program loaded with
``expected_attach_type=TRACE_RAW_TP`` and ``attach_btf_id`` naming the
typedef ``btf_trace_<tracepoint>`` in kernel BTF; see :func:`tp_btf_spec`.
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


def tp_btf_id(tracepoint: str, btf: BTF | None = None) -> int:
    """Kernel BTF id of ``btf_trace_<tracepoint>``, the attach target of a tp_btf program."""
    from ..btf import BTF, BTFError, Kind

    try:
        return (btf or BTF.kernel()).lookup(f"btf_trace_{tracepoint}", [Kind.TYPEDEF])
    except BTFError as err:
        raise UsageError(f"no BTF tracepoint {tracepoint!r}: {err}") from None


def tp_btf_spec(tracepoint: str, code: Code, **options: Any) -> ProgramSpec:
    """The load spec of a tp_btf program for ``tracepoint``; ``options`` go to :class:`ProgramSpec`."""
    options.setdefault("name", tracepoint)
    return ProgramSpec(ProgType.TRACING, code, expected_attach_type=AttachType.TRACE_RAW_TP,
                       attach_btf_id=tp_btf_id(tracepoint), **options)


def attach_tp_btf(prog: Program, cookie: int = 0) -> FDLink:
    """Attach a loaded tp_btf program to the tracepoint it was loaded for."""
    return raw_tracepoint_open(prog, None, cookie)
