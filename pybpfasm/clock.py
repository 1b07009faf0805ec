"""Kernel timestamps as wall-clock time.

``bpf_ktime_get_ns`` counts CLOCK_MONOTONIC and ``bpf_ktime_get_boot_ns``
CLOCK_BOOTTIME, both from boot; user space wants Unix time.  The offset
between each and CLOCK_REALTIME is taken once, as the tightest of a few
paired readings, so converting a stamp is one addition.
"""

from __future__ import annotations

import time

_CLOCKS = {"monotonic": time.CLOCK_MONOTONIC, "boottime": time.CLOCK_BOOTTIME}


def wall_offset(clock: str = "monotonic", tries: int = 5) -> float:
    """Seconds to add to *clock*'s reading (``monotonic`` or ``boottime``) to get Unix time."""
    clk = _CLOCKS[clock]
    best: tuple[float, float] | None = None
    for _ in range(tries):
        before = time.time()
        kernel = time.clock_gettime(clk)
        after = time.time()
        if best is None or after - before < best[0]:
            best = (after - before, (before + after) / 2 - kernel)
    assert best is not None
    return best[1]


class WallClock:
    """Converts kernel nanosecond stamps of one clock to Unix time (seconds)."""

    def __init__(self, clock: str = "monotonic") -> None:
        self.offset = wall_offset(clock)

    def __call__(self, ns: int) -> float:
        return self.offset + ns / 1e9
