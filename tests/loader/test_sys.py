"""The system-call layer itself: perf_event_open, ioctl, mmap and error values."""

from __future__ import annotations

import errno
import mmap
import os
import struct

import pytest

from pybpfasm.errors import BPFError
from pybpfasm.maps import MapSpec
from pybpfasm.sys import (
    Cmd,
    Mapping,
    MapType,
    SyscallError,
    bpf,
    ffi,
    ioctl,
    new_attr,
    perf_event_open,
)

PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK = 1, 1
PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_DISABLE = 0x2400, 0x2401


def test_perf_event_counts_and_maps() -> None:
    attr = ffi.new("struct perf_event_attr *")
    attr.type, attr.config, attr.disabled = PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, 1
    with perf_event_open(attr, pid=0, cpu=-1) as fd:
        ioctl(fd.fileno(), PERF_EVENT_IOC_ENABLE)
        sum(range(200_000))
        ioctl(fd.fileno(), PERF_EVENT_IOC_DISABLE)
        (nanoseconds,) = struct.unpack("=Q", os.read(fd.fileno(), 8))
        assert nanoseconds > 0
        with Mapping(fd.fileno(), 2 * mmap.PAGESIZE) as ring:  # metadata page + one data page
            assert len(ring.buffer) == 2 * mmap.PAGESIZE
        assert ring.closed


def test_errors_keep_errno_and_are_oserrors() -> None:
    attr = new_attr()
    attr.elem.map_fd = 0x7FFF_FFFF
    with pytest.raises(SyscallError) as info:
        bpf(Cmd.MAP_LOOKUP_ELEM, attr)
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, BPFError)
    assert err.errno == errno.EBADF
    assert str(err) == "BPF_MAP_LOOKUP_ELEM: Bad file descriptor"


def test_invalid_map_says_what_to_check() -> None:
    with pytest.raises(SyscallError, match="check that it supports hash maps"):
        MapSpec(MapType.HASH, 0, 4, 4).create()


def test_ioctl_error() -> None:
    with pytest.raises(SyscallError) as info:
        ioctl(-1, PERF_EVENT_IOC_ENABLE)
    assert info.value.errno == errno.EBADF
