"""Code size against clang -O2 on equivalent C (a regression guard; ratios in the report).

Each program is written twice: in C (``c/*.c``, compiled by the clang of the
``ziglang`` wheel) and in the eDSL; both are loaded and must give the same
verdicts, and ours may be at most 1.3x LLVM's instruction count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpfasm.dsl.types import u32, u64
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import ProgType
from pybpfasm.text import format_program

from .harness import PacketFrame, load

pytest.importorskip("ziglang", reason="clang comes from the ziglang wheel (test extra)")
from tests.isa.llvm import compile_c

pytestmark = pytest.mark.kernel

C_DIR = Path(__file__).parent / "c"
MAX_RATIO = 1.3


def arith(f: PacketFrame) -> None:
    b = f.b
    a, y = f.input(0), f.input(1)
    x = (a * 3 + y) ^ (a >> 2)
    with b.if_((x > 1000) & y.test(4)):
        b.return_(1)
    with b.if_(x % 7 == 0):
        b.return_(2)
    b.return_(3)


def branches(f: PacketFrame) -> None:
    b = f.b
    x, y = f.input(0), f.input(1)
    with b.if_(x < 10):
        with b.if_(y < 10):
            b.return_(1)
        with b.if_(y == 100):
            b.return_(2)
        b.return_(3)
    with b.if_((x > 1000) | (y == 7)):
        b.return_(4)
    b.return_(5)


def loop(f: PacketFrame) -> None:
    b = f.b
    limit, step = f.input(0), f.input(1)
    total = b.var(0)
    for i in b.range(16):
        with b.if_(i == limit):
            b.break_()
        with b.if_(i.test(1)):
            b.continue_()
        total.set(total + i * step)
    b.return_(total & 3)


def calls(f: PacketFrame) -> None:
    b = f.b
    a, y = f.input(0) + 1, f.input(1) * 3
    t0 = b.ktime_get_ns()
    d = a ^ y
    r = b.get_prandom_u32()
    t1 = b.ktime_get_ns()
    b.return_((a + y + d + r + (t1 - t0)) & 3)


PROGRAMS = {
    "arith": (arith, [u32, u32], [(5, 7), (400, 4), (0, 0), (1000, 5), (0xFFFF_FFFF, 12)]),
    "branches": (branches, [u64, u64], [(x, y) for x in (0, 9, 10, 1000, 1001) for y in (0, 7, 10, 100)]),
    "loop": (loop, [u64, u64], [(0, 1), (3, 5), (9, 2), (16, 1), (99, 3)]),
    "calls": (calls, [u64, u64], []),  # verdicts depend on the clock: only loaded
}


def slots(insns) -> int:
    return sum(i.slots for i in insns)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_size_against_clang(name):
    build, types, cases = PROGRAMS[name]
    frame = PacketFrame(types, 0)
    build(frame)
    ours = frame.b.assemble()
    clang = compile_c(C_DIR / f"{name}.c")["xdp"]
    ratio = slots(ours) / (len(clang) // 8)
    print(f"{name}: eDSL {slots(ours)} vs clang -O2 {len(clang) // 8} instructions, ratio {ratio:.2f}")
    with load(ours) as mine, ProgramSpec(ProgType.XDP, clang, name=f"c_{name}").load() as theirs:
        for values in cases:
            packet = frame.packet(values)
            assert mine.test_run(packet).retval == theirs.test_run(packet).retval, values
    assert ratio <= MAX_RATIO, format_program(ours)
