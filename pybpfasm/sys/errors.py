"""Failed system calls as :class:`SyscallError`: errno kept, one sentence of advice."""

from __future__ import annotations

import errno as _errno
import os

from ..errors import BPFError
from .rlimit import kernel_release

#: advice for errnos whose meaning does not depend on the command
_HINTS = {
    _errno.EPERM: (
        "run as root or with CAP_BPF (plus CAP_PERFMON for tracing and CAP_NET_ADMIN "
        "for networking programs)"
    ),
    _errno.E2BIG: (
        "this kernel does not know an attribute the call uses (it predates the feature) "
        "or the object is larger than the kernel allows"
    ),
    _errno.ENOSYS: "this kernel was built without the bpf() system call (CONFIG_BPF_SYSCALL)",
}


#: capability bits that allow BPF: CAP_SYS_ADMIN (all kernels), CAP_BPF (5.8+)
_CAP_SYS_ADMIN, _CAP_BPF = 21, 39


def has_bpf_capability() -> bool:
    """Whether this process holds CAP_BPF or CAP_SYS_ADMIN in its effective set."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
                return bool(caps & (1 << _CAP_SYS_ADMIN | 1 << _CAP_BPF))
    return False


def _default_hint(err: int) -> str | None:
    if err == _errno.EPERM:
        if has_bpf_capability():
            return (
                "refused although this process holds CAP_BPF: kernel lockdown or a security "
                "module forbids it, or the program type needs CAP_PERFMON/CAP_NET_ADMIN too"
            )
        if kernel_release() < (5, 11):
            return _HINTS[err] + ", and raise RLIMIT_MEMLOCK (ulimit -l unlimited)"
    return _HINTS.get(err)


class SyscallError(BPFError, OSError):
    """A system call failed; ``errno`` says why, the message says what to do."""

    def __init__(self, call: str, err: int, hint: str | None = None) -> None:
        self.call = call
        self.hint = _default_hint(err) if hint is None else hint
        message = f"{call}: {os.strerror(err)}"
        if self.hint:
            message += f": {self.hint}"
        OSError.__init__(self, err, message)

    def __str__(self) -> str:
        return str(self.strerror)
