"""Programs on perf events (tracepoints, kprobes): a ``bpf_link`` where the kernel has one.

With BPF_LINK_TYPE_PERF_EVENT (5.15) the program is attached through a link,
which the kernel drops with the process; older kernels take the program by
``PERF_EVENT_IOC_SET_BPF`` on the perf event descriptor, and closing that
descriptor detaches it (also on SIGKILL, since the kernel closes it).
"""

from __future__ import annotations

import errno
from typing import Callable

from ..errors import UsageError
from ..sys import FD, AttachType, SyscallError, ffi, ioctl, perf_event_open
from .base import FDLink, Link, link_create

PERF_TYPE_TRACEPOINT = 2
PERF_SAMPLE_RAW = 1 << 10
#: _IO('$', 0), _IO('$', 1), _IOW('$', 8, __u32)
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408
PERF_FLAG_FD_CLOEXEC = 1 << 3


def open_event(type_: int, config: int, *, config1: int = 0, config2: int = 0,
               cpu: int = 0) -> FD:
    """A disabled system-wide perf event on ``cpu`` (one CPU is enough for BPF attachment).

    ``config1``/``config2`` may be addresses (kprobe PMU): the caller keeps
    the buffers alive for the duration of the call.
    """
    attr = ffi.new("struct perf_event_attr *")
    attr.type, attr.config = type_, config
    attr.config1, attr.config2 = config1, config2
    attr.sample_type = PERF_SAMPLE_RAW
    attr.sample_period = 1
    attr.wakeup_events = 1
    attr.disabled = 1
    return perf_event_open(attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)


class PerfEventLink(Link):
    """A program on a perf event: owns the event, the link (if any) and a cleanup step."""

    def __init__(self, event: FD, link: FDLink | None, cleanup: Callable[[], None] | None = None):
        self.event = event
        #: the ``bpf_link``, None where the program went on by ioctl
        self.link = link
        self._cleanup = cleanup

    @property
    def closed(self) -> bool:
        return self.event.closed

    def close(self) -> None:
        if self.event.closed:
            return
        try:
            if self.link is not None:
                self.link.close()
            else:
                ioctl(self.event.fileno(), PERF_EVENT_IOC_DISABLE)
        finally:
            self.event.close()
            cleanup, self._cleanup = self._cleanup, None
            if cleanup is not None:
                cleanup()

    def __repr__(self) -> str:
        how = "link" if self.link is not None else "ioctl"
        return f"<PerfEventLink {how} event={self.event!r}>"


def attach_perf_event(prog_fd: int, event: FD, cleanup: Callable[[], None] | None = None,
                      cookie: int = 0, via: str = "auto") -> PerfEventLink:
    """Attach to an open perf event (takes ownership of ``event`` and ``cleanup``).

    ``via``: ``"auto"`` (a link where the kernel has perf-event links), ``"link"`` or ``"ioctl"``.
    ``auto`` asks the kernel by trying the link: a kernel before 5.15 refuses it with
    EINVAL (an unknown attach type or command), and the program goes on by ioctl.
    """
    try:
        if via not in ("auto", "link", "ioctl"):
            raise UsageError(f"unknown attach method {via!r} (auto, link or ioctl)")
        link: FDLink | None = None
        if via != "ioctl":
            try:
                link = FDLink(link_create(prog_fd, event.fileno(), AttachType.PERF_EVENT,
                                          perf_event={"bpf_cookie": cookie}))
            except SyscallError as err:
                if via == "link" or err.errno != errno.EINVAL:
                    raise
        if link is None:
            if cookie:
                raise UsageError("BPF cookies need perf-event links (Linux 5.15+)")
            ioctl(event.fileno(), PERF_EVENT_IOC_SET_BPF, prog_fd)
        ioctl(event.fileno(), PERF_EVENT_IOC_ENABLE)
        return PerfEventLink(event, link, cleanup)
    except BaseException:
        event.close()
        if cleanup is not None:
            cleanup()
        raise
