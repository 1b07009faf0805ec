"""A syscall's arguments by their tracepoint names, also on a kprobe of its wrapper.

Where the ``syscalls:sys_enter_*`` tracepoints are missing (CONFIG_FTRACE_SYSCALLS off), a
tool can kprobe the syscall's wrapper (``__x64_sys_execve``) instead: the wrapper takes the
user's registers as a ``struct pt_regs``, and :class:`SyscallArgs` reads the arguments out
of it under the names the tracepoint gives them, so one program body serves both hooks.
"""

from __future__ import annotations

import os

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
