"""Tracepoint programs (``BPF_PROG_TYPE_TRACEPOINT``) on ``category:event``."""

from __future__ import annotations

from ..kernel import tracepoint_id
from ..prog import Program
from .perf_event import PERF_TYPE_TRACEPOINT, PerfEventLink, attach_perf_event, open_event


def attach_tracepoint(prog: Program, category: str, event: str, cookie: int = 0,
                      via: str = "auto") -> PerfEventLink:
    """Attach ``prog`` to tracepoint ``category:event`` (id from tracefs).

    ``via``: ``"auto"`` (a perf-event link where the kernel has one), ``"link"`` or ``"ioctl"``.
    """
    perf = open_event(PERF_TYPE_TRACEPOINT, tracepoint_id(category, event))
    return attach_perf_event(prog.fileno(), perf, cookie=cookie, via=via)
