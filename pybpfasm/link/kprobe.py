"""kprobes and kretprobes (``BPF_PROG_TYPE_KPROBE``) on kernel functions.

The kprobe PMU (4.17, ``/sys/bus/event_source/devices/kprobe``) creates the
probe with ``perf_event_open`` itself, so it vanishes with the descriptor.
Without it, the probe is written to tracefs ``kprobe_events`` under a name
unique to this process and removed on ``close()`` (a process killed before
that leaves the probe defined but no program on it, as with libbpf).
"""

from __future__ import annotations

import errno
import itertools
import os

from ..errors import BPFError, UsageError
from ..kernel import KernelError, tracefs_path, tracepoint_id
from ..prog import Program
from ..sys import SyscallError, address, ffi
from .perf_event import PERF_TYPE_TRACEPOINT, PerfEventLink, attach_perf_event, open_event

PMU_DIR = "/sys/bus/event_source/devices/kprobe"
#: the tracefs group of probes this library defines
GROUP = "pybpfasm"
_serial = itertools.count()


class KprobeError(BPFError):
    """The kernel cannot place the probe (no kprobes, unknown or blacklisted function)."""


def kprobes_available() -> bool:
    """Whether this kernel can place kprobes (its PMU or tracefs ``kprobe_events``)."""
    return _pmu() is not None or os.path.exists(tracefs_path("kprobe_events"))


def _pmu() -> tuple[int, int] | None:
    """(PMU type, retprobe config bit) of the kprobe PMU, None where the kernel has none."""
    try:
        with open(os.path.join(PMU_DIR, "type")) as f:
            pmu_type = int(f.read())
        with open(os.path.join(PMU_DIR, "format", "retprobe")) as f:
            bit = int(f.read().strip().partition(":")[2])  # "config:0"
    except FileNotFoundError:
        return None
    return pmu_type, bit


def attach_kprobe(prog: Program, function: str, offset: int = 0, retprobe: bool = False,
                  cookie: int = 0, via: str = "auto") -> PerfEventLink:
    """Attach ``prog`` at ``function+offset`` (or on its return with ``retprobe``).

    ``via``: ``"auto"`` (the PMU where the kernel has it), ``"pmu"`` or ``"tracefs"``.
    """
    if via not in ("auto", "pmu", "tracefs"):
        raise UsageError(f"unknown kprobe method {via!r} (auto, pmu or tracefs)")
    pmu = _pmu() if via != "tracefs" else None
    if via == "pmu" and pmu is None:
        raise KprobeError(f"this kernel has no kprobe PMU ({PMU_DIR})")
    if pmu is not None:
        pmu_type, bit = pmu
        name = ffi.new("char[]", function.encode())
        try:
            event = open_event(pmu_type, (1 << bit) if retprobe else 0,
                               config1=address(name), config2=offset)
        except SyscallError as err:
            raise KprobeError(_placement_error(function, offset, err.errno)) from None
        return attach_perf_event(prog.fileno(), event, cookie=cookie)
    return _attach_legacy(prog, function, offset, retprobe, cookie)


def _placement_error(function: str, offset: int, err: int) -> str:
    where = function + (f"+{offset:#x}" if offset else "")
    if err in (errno.ENOENT, errno.EINVAL):
        return f"cannot probe {where}: no such kernel function, or it is inlined or blacklisted"
    return f"cannot probe {where}: {os.strerror(err)}"


def _write_events(line: str) -> None:
    path = tracefs_path("kprobe_events")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        raise KprobeError("this kernel has no kprobes (CONFIG_KPROBES / CONFIG_KPROBE_EVENTS)") from None
    try:
        os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


def _attach_legacy(prog: Program, function: str, offset: int, retprobe: bool,
                   cookie: int) -> PerfEventLink:
    event_name = f"pbk_{os.getpid()}_{next(_serial)}"
    probe = f"{'r' if retprobe else 'p'}:{GROUP}/{event_name} {function}"
    try:
        _write_events(probe + (f"+{offset}" if offset else ""))
    except OSError as err:
        raise KprobeError(_placement_error(function, offset, err.errno)) from None

    def remove() -> None:
        _write_events(f"-:{GROUP}/{event_name}")

    try:
        event = open_event(PERF_TYPE_TRACEPOINT, tracepoint_id(GROUP, event_name))
    except (SyscallError, KernelError):
        remove()
        raise
    return attach_perf_event(prog.fileno(), event, remove, cookie)
