"""A program emits exactly K records: the readers deliver K, or fewer plus an exact lost count."""

from __future__ import annotations

import os
import threading
import time

import pytest

from pybpfasm.errors import UsageError
from pybpfasm.events import PerfBuffer, RingBuffer
from pybpfasm.maps import MapSpec
from pybpfasm.sys import MapType

from .programs import MARKER, RECORD, counter, emitter, run

K = 20_000


def _check(records: list, lost: int, k: int) -> None:
    """Records are distinct, well formed, and with the lost ones make exactly ``k``."""
    seqs = [seq for seq, marker in records]
    assert all(marker == MARKER for _, marker in records)
    assert len(set(seqs)) == len(seqs)
    assert all(0 <= s < k for s in seqs)
    assert len(records) + lost == k


@pytest.fixture
def ring():
    with MapSpec(MapType.RINGBUF, max_entries=1 << 22).create() as rb, \
            counter("seq") as seq, counter("lost") as lost:
        yield rb, seq, lost


def test_ringbuf_delivers_every_record(ring):
    rb, seq, lost = ring
    with emitter("ringbuf", rb, seq, lost) as prog, RingBuffer(rb, RECORD, lost=lost) as reader:
        run(prog, K)
        records = reader.read()
        assert [s for s, _ in records] == list(range(K))  # in order
        assert reader.lost == 0
        assert reader.read() == []


def test_ringbuf_read_limit_and_raw_bytes(ring):
    rb, seq, lost = ring
    with emitter("ringbuf", rb, seq, lost) as prog, RingBuffer(rb) as reader:
        run(prog, 10)
        first = reader.read(limit=4)
        rest = reader.read()
        assert [RECORD.unpack(r)[0] for r in first + rest] == list(range(10))


def test_ringbuf_flood_counts_exactly_what_was_lost():
    with MapSpec(MapType.RINGBUF, max_entries=4096).create() as rb, counter("seq") as seq, \
            counter("lost") as lost, emitter("ringbuf", rb, seq, lost) as prog, \
            RingBuffer(rb, RECORD, lost=lost) as reader:
        run(prog, K)  # 4 KiB holds 170 records of 24 bytes: most are lost
        records = reader.read()
        assert 0 < len(records) < K
        _check(records, reader.lost, K)


def test_ringbuf_concurrent_reader_under_flood():
    """A reader draining while the program floods: delivered + lost == K, nothing twice."""
    with MapSpec(MapType.RINGBUF, max_entries=1 << 14).create() as rb, counter("seq") as seq, \
            counter("lost") as lost, emitter("ringbuf", rb, seq, lost) as prog, \
            RingBuffer(rb, RECORD, lost=lost) as reader:
        records: list = []
        done = threading.Event()

        def drain() -> None:
            while not done.is_set():
                records.extend(reader.poll(timeout=0.01))
            records.extend(reader.read())

        thread = threading.Thread(target=drain)
        thread.start()
        try:
            for _ in range(10):
                run(prog, K // 10)
        finally:
            done.set()
            thread.join()
        _check(records, reader.lost, K)


def test_ringbuf_poll_waits_for_records(ring):
    rb, seq, lost = ring
    with emitter("ringbuf", rb, seq, lost) as prog, RingBuffer(rb, RECORD) as reader:
        start = time.monotonic()
        assert reader.poll(timeout=0.2) == []
        assert time.monotonic() - start >= 0.15
        threading.Timer(0.05, run, (prog, 3)).start()
        got = reader.poll(timeout=5)  # wakes on the first record; the others may follow
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            got += reader.poll(timeout=0.1)
        assert [s for s, _ in got] == [0, 1, 2]


@pytest.fixture
def perf():
    with MapSpec(MapType.PERF_EVENT_ARRAY).create() as pm, counter("seq") as seq, \
            counter("lost") as lost:
        yield pm, seq, lost


def test_perf_buffer_delivers_every_record(perf):
    pm, seq, lost = perf
    with emitter("perf", pm, seq, lost) as prog, PerfBuffer(pm, RECORD, pages=256) as reader:
        run(prog, 5000)  # 5000 samples of 40 bytes fit in 1 MiB
        records = reader.read()  # CPU by CPU: a test run can migrate between CPUs
        assert sorted(s for s, _ in records) == list(range(5000))
        assert reader.lost == 0 and lost[0] == 0


@pytest.fixture
def one_cpu():
    """Run on one CPU: the sample that flushes a ring's lost count must hit the same ring."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    yield
    os.sched_setaffinity(0, allowed)


def test_perf_buffer_counts_the_kernels_lost_records_exactly(perf, one_cpu):
    pm, seq, lost = perf
    with emitter("perf", pm, seq, lost) as prog, PerfBuffer(pm, RECORD, pages=1) as reader:
        run(prog, K)
        records = reader.read()
        # the kernel reports losses with the next sample that fits: send one after draining
        run(prog, 1)
        records += reader.read()
        assert 0 < len(records) < K
        _check(records, reader.lost, K + 1)
        assert reader.lost == lost[0]  # the kernel's count equals the program's own


def test_perf_buffer_closes_its_rings(perf):
    pm, seq, lost = perf
    reader = PerfBuffer(pm, RECORD, pages=1)
    reader.close()
    with emitter("perf", pm, seq, lost) as prog:
        run(prog, 10)
    assert lost[0] == 10  # no ring in the map: every output fails


def test_readers_reject_the_wrong_map(perf):
    pm, _, _ = perf
    with pytest.raises(UsageError):
        RingBuffer(pm)
    with pytest.raises(UsageError):
        PerfBuffer(pm, pages=3)
