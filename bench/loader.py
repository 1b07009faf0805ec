"""Costs of the loader layer on this machine: map operations, iteration, loads, test runs.

Run as root: ``.venv/bin/python bench/loader.py``. Prints one line per measurement.
"""

from __future__ import annotations

import time
from typing import Callable

from pybpfasm.isa import Mov, exit_
from pybpfasm.maps import MapSpec
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import MapType, ProgType

ENTRIES = 10_000


def per_call(label: str, count: int, fn: Callable[[], object]) -> None:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {elapsed / count * 1e6:8.2f} us/op  ({count} ops, {elapsed:.3f} s)")


def main() -> None:
    with MapSpec(MapType.HASH, 4, 8, ENTRIES).create() as m:
        per_call("hash update, one syscall each", ENTRIES,
                 lambda: [m.update(k, k) for k in range(ENTRIES)])
        per_call("hash lookup, one syscall each", ENTRIES, lambda: [m[k] for k in range(ENTRIES)])
        per_call("hash items() by LOOKUP_BATCH", ENTRIES, m.lookup_batch)
        per_call("hash items() by GET_NEXT_KEY + lookup", ENTRIES,
                 lambda: [(k, m[k]) for k in list(m.keys())])
        per_call("hash update_batch", ENTRIES,
                 lambda: m.update_batch((k, k + 1) for k in range(ENTRIES)))
    spec = ProgramSpec(ProgType.SOCKET_FILTER, [Mov.imm(0, 0), exit_()])
    per_call("load + close a 2-insn socket filter", 1000,
             lambda: [spec.load().close() for _ in range(1000)])
    with ProgramSpec(ProgType.XDP, [Mov.imm(0, 2), exit_()]).load() as prog:
        packet = bytes(64)
        per_call("test_run of XDP (64-byte packet), per call", 10_000,
                 lambda: [prog.test_run(packet) for _ in range(10_000)])
        run = prog.test_run(packet, repeat=100_000)
        print(f"{'in-kernel XDP run (repeat=100000), per run':<44} {run.duration / 1000:8.3f} us/op")


if __name__ == "__main__":
    main()
