"""Hook candidates: a tool lists where it can hook, best first; the kernel decides.

::

    drop = Hook(on_kfree_skb_tp, on_kfree_skb_kprobe)   # ProgramDefs, best first
    pdef = drop.choose()                                # the first this kernel has
    pdef = drop.choose("kprobe")                        # or the one the user asked for

Each kind is asked of the kernel the cheap way: tracepoints by their tracefs
directory, kprobes by the kprobe PMU (or tracefs ``kprobe_events``) and the
symbol in ``/proc/kallsyms``, tp_btf/fentry by the BTF type or function.
"""

from __future__ import annotations

import os

from pybpfasm.dsl import ProgramDef
from pybpfasm.errors import BPFError, UsageError
from pybpfasm.kernel import Kallsyms, tracefs_path


def _tracefs_has(*parts: str) -> bool:
    try:
        return os.path.exists(tracefs_path(*parts))
    except BPFError:
        return False


def kprobes_available() -> bool:
    """Whether this kernel can attach kprobes at all."""
    return os.path.exists("/sys/bus/event_source/devices/kprobe/type") or _tracefs_has("kprobe_events")


def _btf_has(kind: str, name: str) -> bool:
    """Whether the kernel's BTF has a FUNC (``kind="func"``) or typedef named *name*."""
    from pybpfasm.btf import BTF, BTFError, Kind

    try:
        return bool(BTF.kernel().ids(name, [Kind.FUNC if kind == "func" else Kind.TYPEDEF]))
    except BTFError:
        return False


def unavailable(pdef: ProgramDef) -> str | None:
    """Why this kernel cannot run *pdef* at its target, or None if it can."""
    kind, target = pdef.kind, pdef.target
    if kind == "tracepoint":
        return None if _tracefs_has("events", *target) else f"no tracepoint {':'.join(target)}"
    if kind in ("kprobe", "kretprobe"):
        if not kprobes_available():
            return "no kprobes in this kernel"
        return None if target[0] in Kallsyms.load() else f"no kernel function {target[0]}"
    if kind == "raw_tracepoint":
        return None if _tracefs_has("events") else "no tracefs to check raw tracepoints"
    if kind == "tp_btf":
        return None if _btf_has("type", f"btf_trace_{target[0]}") else f"no BTF for tracepoint {target[0]}"
    if kind in ("fentry", "fexit"):
        return None if _btf_has("func", target[0]) else f"no BTF for function {target[0]}"
    return None


class Hook:
    """Ordered candidates for one hook; :meth:`choose` returns the first the kernel has."""

    def __init__(self, *candidates: ProgramDef) -> None:
        if not candidates:
            raise UsageError("a hook needs at least one candidate program")
        self.candidates = candidates

    @property
    def kinds(self) -> list[str]:
        """The candidates' kinds, without repeats (the values of a ``--hook`` option)."""
        return list(dict.fromkeys(c.kind for c in self.candidates))

    def choose(self, kind: str = "auto") -> ProgramDef:
        """The first candidate (of *kind*, unless ``auto``) this kernel can run."""
        reasons = []
        for pdef in self.candidates:
            if kind not in ("auto", pdef.kind):
                continue
            why = unavailable(pdef)
            if why is None:
                return pdef
            reasons.append(why)
        wanted = "" if kind == "auto" else f" as a {kind}"
        raise UsageError(f"cannot hook{wanted} here: {'; '.join(reasons) or 'no such candidate'}")
