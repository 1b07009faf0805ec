"""RLIMIT_MEMLOCK: kernels before 5.11 charge BPF memory to it, later ones to the memory cgroup."""

from __future__ import annotations

import functools
import os
import resource


def kernel_release() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


@functools.cache
def raise_memlock() -> None:
    """Lift RLIMIT_MEMLOCK on kernels that need it (before 5.11); never raises.

    Without CAP_SYS_RESOURCE only the soft limit can be raised (up to the hard
    one); if even that fails, loads go ahead and any ``EPERM`` says why.
    """
    if kernel_release() >= (5, 11):
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    for limit in (resource.RLIM_INFINITY, hard):
        try:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (limit, limit))
            return
        except (ValueError, OSError):
            continue
