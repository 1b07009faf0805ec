"""Ring buffer and perf buffer decode rates, against a plain Python loop over the same mmap'd bytes.

Run as root: ``python bench/events_bench.py [--records N] [--rounds R]``. A program run
N times by BPF_PROG_TEST_RUN fills the buffer with 16-byte records (seq, marker);
the timed part is only the read: headers walked, records decoded into tuples.

The peer, measured in the same run on the same kind of data, is the floor any
reader must beat: a plain loop over a :mod:`mmap` of the ring that slices
each header and record out as bytes and unpacks them (bpftrace's and bcc's
readers are not comparable: they print, or call back into Python per event).
"""

from __future__ import annotations

import argparse
import mmap
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pybpfasm.events import PAGE, PerfBuffer, RingBuffer
from pybpfasm.maps import MapSpec
from pybpfasm.sys import MapType
from tests.events.programs import RECORD, counter, emitter, run


def plain_loop(fd: int, size: int) -> list:
    """The floor: Python's mmap, bytes slices and struct.unpack per record."""
    consumer = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
    data = mmap.mmap(fd, PAGE + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
    try:
        cons = int.from_bytes(consumer[0:8], "little")
        prod = int.from_bytes(data[0:8], "little")
        out = []
        while cons < prod:
            off = PAGE + (cons & (size - 1))
            word = int.from_bytes(data[off:off + 4], "little")
            if word & (1 << 31):
                break
            length = word & 0x3FFF_FFFF
            if not word & (1 << 30):
                out.append(struct.unpack("=QQ", data[off + 8:off + 8 + length]))
            cons += (length + 8 + 7) & ~7
        consumer[0:8] = cons.to_bytes(8, "little")
        return out
    finally:
        consumer.close()
        data.close()


def best_rate(fill, read, records: int, rounds: int) -> float:
    """Best records/s of ``read()`` over ``rounds`` fills of ``records`` each."""
    best = 0.0
    for _ in range(rounds):
        fill()
        start = time.perf_counter()
        got = read()
        elapsed = time.perf_counter() - start
        if len(got) != records:
            raise SystemExit(f"read {len(got)} records, expected {records}")
        best = max(best, records / elapsed)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    size = 1 << max(20, (args.records * 24 * 2 - 1).bit_length())

    with MapSpec(MapType.RINGBUF, max_entries=size).create() as rb, counter("seq") as seq, \
            counter("lost") as lost, emitter("ringbuf", rb, seq, lost) as prog, \
            RingBuffer(rb, RECORD, lost=lost) as tuples, RingBuffer(rb) as raw:
        fill = lambda: run(prog, args.records)  # noqa: E731
        ours = best_rate(fill, tuples.read, args.records, args.rounds)
        ours_raw = best_rate(fill, raw.read, args.records, args.rounds)
        floor = best_rate(fill, lambda: plain_loop(rb.fileno(), size), args.records, args.rounds)
        assert lost[0] == 0

    perf_records = min(args.records, 200_000)
    with MapSpec(MapType.PERF_EVENT_ARRAY).create() as pm, counter("seq") as seq, \
            counter("lost") as lost, emitter("perf", pm, seq, lost) as prog, \
            PerfBuffer(pm, RECORD, pages=4096) as reader:
        perf = best_rate(lambda: run(prog, perf_records), reader.read, perf_records, args.rounds)

    print(f"ring buffer, {args.records} records of {RECORD.size} bytes, best of {args.rounds}:")
    print(f"  RingBuffer.read -> tuples       {ours:12,.0f} records/s")
    print(f"  RingBuffer.read -> bytes        {ours_raw:12,.0f} records/s")
    print(f"  plain mmap loop -> tuples       {floor:12,.0f} records/s   (peer: the floor)")
    print(f"  ratio tuples / floor            {ours / floor:12.2f}x")
    print(f"perf buffer, {perf_records} records:")
    print(f"  PerfBuffer.read -> tuples       {perf:12,.0f} records/s")
    print(f"goal >= 1,000,000 records/s decoded: {'met' if ours >= 1e6 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
