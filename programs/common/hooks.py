"""Hook candidates: a tool lists where it can hook, best first; the kernel decides.

::

    drop = Hook(on_kfree_skb_tp, on_kfree_skb_kprobe)   # ProgramDefs, best first
    pdef = drop.choose()                                # the first this kernel has
    pdef = drop.choose("kprobe")                        # or the one the user asked for

Each kind is asked of the kernel the cheap way: tracepoints by their tracefs
directory, raw tracepoints by that and the kernel's BTF file (their arguments
are laid out from it), kprobes by the kprobe PMU (or tracefs ``kprobe_events``)
and the symbol in ``/proc/kallsyms``, tp_btf/fentry by the BTF type or function.
"""

from __future__ import annotations

import os

from pybpfasm.dsl import ProgramDef
from pybpfasm.errors import UsageError
from pybpfasm.kernel import Kallsyms, tracefs_path

KERNEL_BTF = "/sys/kernel/btf/vmlinux"


def _tracefs_has(*parts: str) -> bool:
    """Whether tracefs has this path (tracefs closed to this user is an error, not a no)."""
    return os.path.exists(tracefs_path(*parts))


def _tracepoint_named(event: str) -> bool:
    """Whether some tracepoint category has *event* (raw tracepoints go by event alone)."""
    return any(os.path.isdir(os.path.join(tracefs_path("events"), c, event))
               for c in os.listdir(tracefs_path("events")))


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
        # the arguments' layout and names come from BTF: without it, the tracepoint
        if not os.path.exists(KERNEL_BTF):
            return f"no kernel BTF ({KERNEL_BTF}) to lay out raw tracepoint {target[0]}"
        return None if _tracepoint_named(target[0]) else f"no tracepoint {target[0]}"
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
