"""Hook alternatives made of several programs: the first set this kernel can run wins.

:class:`~.hooks.Hook` picks one program among candidates; a tool whose hook is
a set of programs (the book's two ``sock_sendmsg``/``sock_recvmsg`` kprobes, or
six send/recv syscall tracepoints in their place) lists the sets instead::

    sends = HookSet(kprobe=[on_sendmsg, on_recvmsg], tracepoint=[on_sendto, ...])
    choice = sends.choose(args.hook)       # "auto": the first set available
    choice.kind, choice.programs, choice.passed_over   # "tracepoint", [...], {"kprobe": why}
"""

from __future__ import annotations

from typing import NamedTuple

from pybpfasm.dsl import ProgramDef
from pybpfasm.errors import BPFError, UsageError

from .hooks import unavailable


class Choice(NamedTuple):
    """The set chosen, its programs, and why each better set was passed over."""

    kind: str
    programs: list[ProgramDef]
    passed_over: dict[str, str]


class HookSet:
    """Named sets of programs, best first; :meth:`choose` returns one this kernel can run."""

    def __init__(self, **sets: list[ProgramDef]) -> None:
        if not sets:
            raise UsageError("a hook set needs at least one set of programs")
        self.sets = sets

    @property
    def kinds(self) -> list[str]:
        """The sets' names, best first (the values of a ``--hook`` option besides ``auto``)."""
        return list(self.sets)

    def choose(self, kind: str = "auto") -> Choice:
        """The first set (or set *kind*) whose every program this kernel can run;
        otherwise one line saying why none can."""
        reasons: dict[str, str] = {}
        for name, programs in self.sets.items():
            if kind not in ("auto", name):
                continue
            missing = [why for why in map(_unavailable, programs) if why is not None]
            if not missing:
                return Choice(name, programs, reasons)
            reasons[name] = missing[0]
        wanted = "" if kind == "auto" else f" with {kind}s"
        raise UsageError(f"cannot hook{wanted} here: {'; '.join(reasons.values()) or 'no such hook'}")


def _unavailable(pdef: ProgramDef) -> str | None:
    """Why this kernel cannot run *pdef*; a kernel fact that cannot be read is a reason too
    (the next set is tried)."""
    try:
        return unavailable(pdef)
    except BPFError as err:
        return str(err)
