"""A syscall's arguments by their tracepoint names, also on a kprobe of its wrapper, and
the entry/exit programs of syscalls on either (:class:`SyscallHooks`).

Where the ``syscalls:sys_enter_*`` tracepoints are missing (CONFIG_FTRACE_SYSCALLS off), a
tool can kprobe the syscall's wrapper (``__x64_sys_execve``) instead: the wrapper takes the
user's registers as a ``struct pt_regs``, and :class:`SyscallArgs` reads the arguments out
of it under the names the tracepoint gives them, so one program body serves both hooks.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from pybpfasm.dsl import ProgramDef, kprobe, kretprobe, tracepoint
from pybpfasm.errors import UsageError
from pybpfasm.kernel import tracefs_path

from .hooks import Hook, unavailable

#: where each argument of a syscall is in the struct pt_regs its wrapper gets (the syscall
#: ABI: on x86_64 the fourth is r10, not cx as in function calls)
SYSCALL_REGS = {
    "x86_64": ("di", "si", "dx", "r10", "r8", "r9"),
    "aarch64": tuple(f"regs[{i}]" for i in range(6)),
}
#: the wrapper of syscall NAME is PREFIX + NAME
WRAPPER_PREFIX = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}


def wrapper(name: str) -> str:
    """The kernel function behind syscall *name* on this architecture."""
    return WRAPPER_PREFIX.get(os.uname().machine, "__x64_sys_") + name


class SyscallArgs:
    """``ctx.filename``, ``ctx.argv``...: a kprobe's syscall arguments by name, read from
    the struct pt_regs its wrapper received; ``value`` is the kprobe's own context."""

    def __init__(self, ctx, names: tuple[str, ...]) -> None:
        arch = os.uname().machine
        if arch not in SYSCALL_REGS:
            raise NotImplementedError(f"syscall arguments are not mapped for {arch}")
        self.ctx, self.names, self.slots = ctx, names, SYSCALL_REGS[arch]
        self.regs = ctx.arg(0).cast("struct pt_regs")

    @property
    def value(self):
        return self.ctx.value

    def __getattr__(self, name: str):
        if name not in self.names:
            raise AttributeError(f"this syscall has no argument {name!r} (it has {', '.join(self.names)})")
        slot = self.slots[self.names.index(name)]
        field, _, index = slot.partition("[")
        ref = getattr(self.regs, field)
        return ref[int(index.rstrip("]"))] if index else ref


Body = Callable[[Any, Any, Any], None]


class SyscallHooks:
    """Programs at some syscalls' entry and exit, on their ``syscalls:sys_enter_*`` and
    ``sys_exit_*`` tracepoints (best) or a kprobe and kretprobe on each wrapper::

        HOOKS = SyscallHooks("on_", {"execve": ("filename", "argv", "envp")}, enter=_enter, leave=_exit)
        kind, syscalls, programs = HOOKS.choose(args.hook)

    ``enter(b, ctx, opts, syscall)`` gets the tracepoint's context, or on a kprobe a
    :class:`SyscallArgs` under the same names; ``leave(b, ctx, opts, syscall)`` reads
    ``ctx.ret`` on either.  Programs are named PREFIX + syscall (+ ``_ret`` at exit).
    """

    KINDS = ("tracepoint", "kprobe")

    def __init__(self, prefix: str, syscalls: dict[str, tuple[str, ...]],
                 enter: Body | None = None, leave: Body | None = None) -> None:
        self.syscalls = syscalls
        self.hooks: dict[str, list[Hook]] = {}
        for name, args in syscalls.items():
            pair = []
            if leave is not None:  # exits first: each attaches before the entry it pairs with
                pair.append(Hook(_program(tracepoint("syscalls", f"sys_exit_{name}"), leave, name, f"{prefix}{name}_ret"),
                                 _program(kretprobe(wrapper(name)), leave, name, f"{prefix}{name}_ret")))
            if enter is not None:
                pair.append(Hook(_program(tracepoint("syscalls", f"sys_enter_{name}"), enter, name, f"{prefix}{name}"),
                                 _program(kprobe(wrapper(name)), _with_args(enter, args), name, f"{prefix}{name}")))
            self.hooks[name] = pair

    def choose(self, kind: str = "auto") -> tuple[str, list[str], list[ProgramDef]]:
        """(kind, the syscalls this kernel has, their programs): the tracepoints where the
        kernel has syscall tracepoints at all (auto), else the kprobes; one line saying why
        when it has none of the syscalls that way."""
        if kind == "auto":
            kind = "tracepoint" if os.path.isdir(tracefs_path("events", "syscalls")) else "kprobe"
        index = self.KINDS.index(kind)
        have = [name for name, pair in self.hooks.items()
                if all(unavailable(hook.candidates[index]) is None for hook in pair)]
        if not have:
            first = next(iter(self.hooks.values()))
            why = next(filter(None, (unavailable(hook.candidates[index]) for hook in first)), "no such hook")
            raise UsageError(f"cannot hook with {kind}s here: {why}")
        return kind, have, [hook.candidates[index] for name in have for hook in self.hooks[name]]

    @staticmethod
    def describe(kind: str, syscalls: list[str]) -> str:
        """The hooks note: which tracepoints or wrapper kprobes were attached."""
        if kind == "tracepoint":
            return f"hooks: tracepoints syscalls:sys_enter/sys_exit_ of {', '.join(syscalls)}"
        return f"hooks: kprobes and kretprobes on {', '.join(wrapper(n) for n in syscalls)}"


def _with_args(body: Body, names: tuple[str, ...]) -> Body:
    """*body* given the kprobe's arguments by their tracepoint names."""
    return lambda b, ctx, opts, syscall: body(b, SyscallArgs(ctx, names), opts, syscall)


def _program(decorate: Callable[[Callable], ProgramDef], body: Body, syscall: str, name: str) -> ProgramDef:
    """A program named *name* running *body* for *syscall* (its kind and target from *decorate*)."""

    def program(b, ctx, opts):
        body(b, ctx, opts, syscall)

    program.__name__ = program.__qualname__ = name
    return decorate(program)
