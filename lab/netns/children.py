"""The lab's long-lived child processes (the drop monitor): they die with the lab, and
``lab down`` finds and stops any that an earlier run left behind.

A child is started with ``PR_SET_PDEATHSIG`` = SIGKILL, so the kernel kills it when the
lab's process (precisely: the thread that started it) dies, even by SIGKILL. Each child
also carries :data:`MARKER` = the topology's name in its environment: that is how
:func:`stop_leftovers` recognises it in ``/proc/PID/environ`` later, whatever its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import signal
import subprocess
import time
from typing import Any, Callable, Sequence

from .errors import LabError

#: the environment variable that marks a process as the lab's; its value is the topology
MARKER = "PYBPFASM_LAB"
#: ``PR_SET_PDEATHSIG`` from include/uapi/linux/prctl.h (Python's stdlib does not name it)
PR_SET_PDEATHSIG = 1
STOP_TIMEOUT = 5.0


@functools.cache
def _prctl() -> Callable[..., int]:
    """libc's prctl, looked up in the parent: the child between fork and exec only calls it."""
    return ctypes.CDLL(None, use_errno=True).prctl


def _die_with(parent: int, prctl: Callable[..., int]) -> None:
    """In the child before exec: SIGKILL when the parent dies, and now if it already has."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the prctl: nobody would send the signal
        os.kill(os.getpid(), signal.SIGKILL)


def popen(argv: Sequence[str], topology: str, **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(argv, **kwargs)`` as a child that dies with this process and
    carries this topology's marker. Call it from the thread that outlives the child."""
    env = {**(kwargs.pop("env", None) or os.environ), MARKER: topology}
    die_with = functools.partial(_die_with, os.getpid(), _prctl())
    return subprocess.Popen(list(argv), env=env, preexec_fn=die_with, **kwargs)


def _marked(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in b"\0" + f.read()
    except OSError:  # gone, or not ours to read
        return False


def leftovers(topology: str) -> list[int]:
    """Pids of live processes that carry ``topology``'s marker (this process excluded)."""
    needle = f"\0{MARKER}={topology}\0".encode()
    pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    return [pid for pid in pids if pid != os.getpid() and _marked(pid, needle)]


def stop_leftovers(topology: str, timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGKILL every leftover of ``topology`` and wait until each has exited; returns their pids.

    SIGKILL, because a leftover's reader is gone: the kernel releases what it holds
    (BPF links, programs and maps die with their last fd). Each is signalled and
    awaited through a pidfd taken before its marker is checked again, so a recycled
    pid is never hit.
    """
    needle = f"\0{MARKER}={topology}\0".encode()
    signalled: dict[int, int] = {}  # pidfd -> pid
    try:
        for pid in leftovers(topology):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:  # exited meanwhile
                continue
            if not _marked(pid, needle):  # exited, and the pid was taken again
                os.close(pidfd)
                continue
            signalled[pidfd] = pid
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        _wait_exited(signalled, topology, timeout)
    finally:
        for pidfd in signalled:
            os.close(pidfd)
    return sorted(signalled.values())


def _wait_exited(pidfds: dict[int, int], topology: str, timeout: float) -> None:
    """Until every pidfd is readable (its process has exited: its fds are closed)."""
    waiting = select.poll()
    for pidfd in pidfds:
        waiting.register(pidfd, select.POLLIN)
    left = set(pidfds)
    deadline = time.monotonic() + timeout
    while left:
        remaining = deadline - time.monotonic()
        ready = waiting.poll(max(remaining, 0) * 1000)
        for pidfd, _ in ready:
            waiting.unregister(pidfd)
            left.discard(pidfd)
        if left and remaining <= 0:
            pids = ", ".join(str(pidfds[fd]) for fd in sorted(left))
            raise LabError(f"processes {pids} of topology {topology} did not exit after SIGKILL")
