"""Encode/decode throughput of the instruction set, in instructions per second.

Goal (issue 2): >= 500,000 instructions/s each way on the project's 2-core VM.
Two workloads: real programs (bench/corpus/*.c compiled by clang -O2, decoded one
program per call, as a loader or disassembler does) and a worst case of 100,000
instructions that are all different.  Peers in the same run: capstone's BPF
disassembler (C) and struct.iter_unpack alone (the floor of any Python decoder).
Run: python bench/isa_bench.py
"""

from __future__ import annotations

import random
import struct
import sys
import time
from pathlib import Path

from pybpfasm import isa
from pybpfasm.isa import AluOp, JumpOp, Size, decode, encode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.isa.llvm import compile_c

GOAL = 500_000


def distinct_program(n: int, seed: int = 1) -> list[isa.Instruction]:
    """n instructions of a realistic mix whose immediates make nearly all distinct."""
    rng = random.Random(seed)
    makers = [
        lambda: rng.choice(list(AluOp)).imm(rng.randrange(10), rng.randrange(-1000, 1000)),
        lambda: rng.choice(list(AluOp)).reg32(rng.randrange(10), rng.randrange(11)),
        lambda: isa.load_mem(rng.randrange(10), rng.randrange(11), rng.randrange(-64, 64), Size.W),
        lambda: isa.store_mem(10, -8 * rng.randrange(1, 64), rng.randrange(10), Size.DW),
        lambda: rng.choice(list(JumpOp)).imm(rng.randrange(10), rng.randrange(100), rng.randrange(50)),
        lambda: isa.call(rng.randrange(1, 200)),
        lambda: isa.ld_imm64(rng.randrange(10), rng.getrandbits(63)),
    ]
    return [rng.choice(makers)() for _ in range(n)]


def best_time(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def report(name: str, count: int, seconds: float) -> float:
    r = count / seconds
    print(f"  {name:<34} {r:12,.0f} insn/s   {'PASS' if r >= GOAL else 'FAIL'} (goal {GOAL:,})")
    return r


def main() -> None:
    corpus = [code for src in sorted(Path(__file__).parent.glob("corpus/*.c"))
              for code in compile_c(src).values()]
    programs = [decode(code) for code in corpus]
    rounds = max(1, 100_000 // sum(map(len, programs)))
    n_real = rounds * sum(map(len, programs))
    print(f"real programs: {len(programs)} from bench/corpus, {n_real:,} instructions per round")
    report("decode (one call per program)", n_real,
           best_time(lambda: [decode(c) for _ in range(rounds) for c in corpus]))
    report("encode (one call per program)", n_real,
           best_time(lambda: [encode(p) for _ in range(rounds) for p in programs]))

    insns = distinct_program(100_000)
    data = encode(insns)
    print(f"worst case: {len(insns):,} distinct instructions in one call")
    dec = report("decode", len(insns), best_time(lambda: decode(data)))
    report("encode", len(insns), best_time(lambda: encode(insns)))

    floor = len(data) // 8 / best_time(lambda: list(struct.iter_unpack("<BBhi", data)))
    print(f"peers: struct.iter_unpack alone {floor:12,.0f} slots/s (worst-case decode = {dec / floor:.2f}x)")
    try:
        import capstone
    except ImportError:
        print("       capstone not installed (pip install capstone): no C peer this run")
        return
    cs = capstone.Cs(capstone.CS_ARCH_BPF, capstone.CS_MODE_BPF_EXTENDED)
    cap = len(insns) / best_time(lambda: sum(1 for _ in cs.disasm_lite(data, 0)), 3)
    print(f"       capstone disasm_lite (C) {cap:12,.0f} insn/s (worst-case decode = {dec / cap:.2f}x)")


if __name__ == "__main__":
    main()
