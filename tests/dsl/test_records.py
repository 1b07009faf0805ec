"""Records round trip: the BPF side stores a record, user space decodes it with the same class.

A ``syscalls:sys_enter_getppid`` program, filtered on this process, fills one
record in a ring buffer and the same record (built on the stack) as a hash map
value.  Every field is checked exactly: helper results (pid, tid, comm, time),
big-endian fields stored from Python ints and from host-order registers,
signed fields, arrays and a nested record.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from pybpfasm.dsl import (
    Collection,
    HashMap,
    Record,
    RingBuf,
    be16,
    be32,
    be64,
    char,
    s8,
    s32,
    tracepoint,
    u8,
    u16,
    u32,
    u64,
)
from pybpfasm.events import RingBuffer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="attaching programs needs root")


class Inner(Record):
    flag: u8
    count: u32


class Sample(Record):
    ts: u64
    pid: u32
    tid: u32
    comm: char[16]
    port: be16
    small: s8
    addr: be32
    delta: s32
    words: u16[3]
    mac: u8[6]
    big: be64
    inner: Inner


EXPECTED = dict(port=8080, small=-5, addr=0x0A000001, delta=-123456, words=[1, 0x8000, 0xFFFF],
                mac=bytes.fromhex("020000c0ffee"), big=0x0102030405060708,
                inner=Inner(flag=0xA5, count=3_000_000_000))

samples = RingBuf(Sample, 1 << 14, name="samples")
last = HashMap(u32, Sample, 4, name="last_sample")


def fill(b, ev, pid_tgid) -> None:
    """Store every field of a Sample: helpers, Python ints, registers of other byte orders."""
    ev.ts = b.ktime_get_ns()
    ev.pid = pid_tgid >> 32
    ev.tid = pid_tgid  # the low 32 bits
    b.get_current_comm(ev.comm.addr(), Sample.field_layout("comm")[1].size)
    ev.port = EXPECTED["port"]  # swapped at build time
    ev.small = EXPECTED["small"]
    ev.addr = b.value(EXPECTED["addr"], u32)  # a host-order register: swapped when stored
    ev.delta = b.value(EXPECTED["delta"], s32)
    for i, w in enumerate(EXPECTED["words"]):
        ev.words[i] = w
    for i, byte in enumerate(EXPECTED["mac"]):
        ev.mac[i] = byte
    ev.big = EXPECTED["big"]
    ev.inner.flag = EXPECTED["inner"].flag
    ev.inner.count = b.value(EXPECTED["inner"].count, u32)


@tracepoint("syscalls", "sys_enter_getppid")
def sample(b, ctx, pid: int) -> None:
    pid_tgid = b.get_current_pid_tgid()
    with b.if_((pid_tgid >> 32) != pid):
        b.return_(0)
    with samples.reserve(b) as ev:
        fill(b, ev, pid_tgid)
    copy = b.stack(Sample, "sample")
    fill(b, copy, pid_tgid)
    last.update(b, 0, copy)


def test_user_side_round_trip() -> None:
    rec = Sample(ts=1, pid=2, tid=3, comm="x" * 15, **EXPECTED)
    assert Sample.decode(Sample.encode(rec)) == rec
    raw = Sample.encode(rec)
    port_at, addr_at = Sample.field_layout("port")[0], Sample.field_layout("addr")[0]
    assert raw[port_at:port_at + 2] == (8080).to_bytes(2, "big")  # network order in memory
    assert raw[addr_at:addr_at + 4] == bytes([10, 0, 0, 1])
    big_at = Sample.field_layout("big")[0]
    assert raw[big_at:big_at + 8] == bytes(range(1, 9))


def test_bpf_written_records_decode_exactly() -> None:
    with open("/proc/thread-self/comm") as f:
        comm = f.read().strip()
    with Collection() as coll:
        coll.load(sample, os.getpid())
        coll.attach(sample)
        before = time.monotonic_ns()
        os.getppid()
        after = time.monotonic_ns()
        with RingBuffer(coll.map(samples), Sample, lost=coll.map(samples.lost)) as ring:
            events = ring.read()
            assert ring.lost == 0
        stored = coll.map(last)[0]
    assert len(events) == 1
    event = events[0]
    assert before <= event.ts <= after
    want = Sample(ts=event.ts, pid=os.getpid(), tid=threading.get_native_id(), comm=comm, **EXPECTED)
    assert event == want
    assert before <= stored.ts <= after
    assert stored == Sample(**{**want.as_dict(), "ts": stored.ts})
