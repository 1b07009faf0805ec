"""What every attachment is: a :class:`Link` that detaches on ``close()``.

:class:`FDLink` is a kernel ``bpf_link``: the kernel detaches it when its
last descriptor closes, so even a process killed with SIGKILL leaves
nothing attached.
"""

from __future__ import annotations

import abc
import contextlib
from typing import Any

from ..sys import (
    FD,
    AttachType,
    Cmd,
    FDOwner,
    bpf,
    bpf_fd,
    new_attr,
    object_info,
    pin,
)


class Link(abc.ABC):
    """An attached program; ``close()`` (or leaving the ``with`` block) detaches it."""

    @abc.abstractmethod
    def close(self) -> None:
        """Detach; closing twice is harmless."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """Whether ``close()`` has run."""

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # detaching at interpreter exit must not raise
            self.close()


class DetachOnce(Link):
    """An attachment we undo ourselves (netlink, setsockopt): :meth:`_detach` runs once."""

    _attached = True

    @property
    def closed(self) -> bool:
        return not self._attached

    def close(self) -> None:
        if self._attached:
            self._attached = False
            self._detach()

    @abc.abstractmethod
    def _detach(self) -> None:
        """Undo the attachment."""


class FDLink(FDOwner, Link):
    """A ``bpf_link``: owns its descriptor; the kernel detaches when the last copy closes."""

    def __init__(self, fd: FD) -> None:
        self._fd = fd

    def info(self) -> Any:
        """The kernel's ``struct bpf_link_info`` (``type``, ``id``, ``prog_id`` ...)."""
        return object_info(self.fileno(), "struct bpf_link_info")

    @property
    def id(self) -> int:
        return int(self.info().id)

    def pin(self, path: str) -> None:
        """Pin in bpffs: the attachment then outlives this process until the pin is removed."""
        pin(self.fileno(), path)

    def detach(self) -> None:
        """Detach now (BPF_LINK_DETACH) although other descriptors of the link stay open."""
        attr = new_attr()
        attr.link_detach.link_fd = self.fileno()
        bpf(Cmd.LINK_DETACH, attr)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self._fd!r}>"


def link_create(prog_fd: int, target: int, attach_type: AttachType, flags: int = 0,
                hint: str | None = None, **extra: Any) -> FD:
    """BPF_LINK_CREATE; ``extra`` sets members of ``link_create`` (``tcx``, ``perf_event`` ...)."""
    attr = new_attr()
    lc = attr.link_create
    lc.prog_fd, lc.target_fd, lc.attach_type, lc.flags = prog_fd, target, attach_type, flags
    for member, values in extra.items():
        for name, value in values.items():
            setattr(getattr(lc, member), name, value)
    return bpf_fd(Cmd.LINK_CREATE, attr, hint)
