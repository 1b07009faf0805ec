"""Kernel timestamps to Unix time: a BPF stamp taken now converts to about now."""

from __future__ import annotations

import time

import pytest

from pybpfasm.clock import WallClock, wall_offset

pytestmark = pytest.mark.unprivileged


@pytest.mark.parametrize("clock", ["monotonic", "boottime"])
def test_a_stamp_taken_now_is_now(clock):
    convert = WallClock(clock)
    clk = time.CLOCK_MONOTONIC if clock == "monotonic" else time.CLOCK_BOOTTIME
    stamp = time.clock_gettime_ns(clk)
    assert abs(convert(stamp) - time.time()) < 0.01


def test_the_offset_is_stable():
    assert abs(wall_offset() - wall_offset()) < 0.001
