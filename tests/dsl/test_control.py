"""Control flow: nested if/else, combined conditions, JSET, bounded loops, early returns, functions."""

from __future__ import annotations

import itertools

import pytest

from pybpfasm.dsl.types import u32, u64
from pybpfasm.text import format_program

from .harness import PacketFrame, run_packet_program
from .listing import conditional_jumps, unreachable

pytestmark = pytest.mark.kernel

M64 = (1 << 64) - 1


def test_nested_if_else():
    def body(frame: PacketFrame) -> None:
        b = frame.b
        x, y = frame.input(0), frame.input(1)
        out = b.var(0)
        with b.if_(x < 10):
            with b.if_(y < 10):
                out.set(1)
            with b.else_():
                with b.if_(y == 100):
                    out.set(2)
                with b.else_():
                    out.set(x + y)
        with b.else_():
            with b.if_(x > 1000):
                out.set(4)
            out.set(out + 10)
        frame.output(0, out)

    def model(x: int, y: int) -> int:
        if x < 10:
            return 1 if y < 10 else 2 if y == 100 else x + y
        return (4 if x > 1000 else 0) + 10

    cases = list(itertools.product([0, 9, 10, 1000, 1001, M64], [0, 9, 10, 100, M64]))
    got = run_packet_program([u64, u64], 1, body, cases)
    assert got == [[model(x, y) & M64] for x, y in cases]


CONDITIONS = {
    "a & b": (lambda x, y, z: (x == 1) & (y == 2), lambda x, y, z: x == 1 and y == 2),
    "a | b": (lambda x, y, z: (x == 1) | (y == 2), lambda x, y, z: x == 1 or y == 2),
    "~a": (lambda x, y, z: ~(x == 1), lambda x, y, z: x != 1),
    "~(a & b) | c": (lambda x, y, z: ~((x == 1) & (y == 2)) | (z > 5),
                     lambda x, y, z: not (x == 1 and y == 2) or z > 5),
    "(a | b) & ~c": (lambda x, y, z: ((x == 1) | (y == 2)) & ~(z > 5),
                     lambda x, y, z: (x == 1 or y == 2) and not z > 5),
    "~(a | (b & c))": (lambda x, y, z: ~((x == 1) | ((y == 2) & (z > 5))),
                       lambda x, y, z: not (x == 1 or (y == 2 and z > 5))),
    "value": (lambda x, y, z: x, lambda x, y, z: x != 0),
    "test": (lambda x, y, z: y.test(0x6), lambda x, y, z: y & 0x6 != 0),
    "~test": (lambda x, y, z: ~y.test(0x6), lambda x, y, z: y & 0x6 == 0),
    "test32": (lambda x, y, z: z.test(0x8000_0000), lambda x, y, z: z & 0x8000_0000 != 0),
    "~test & a": (lambda x, y, z: ~z.test(1) & (x == 1), lambda x, y, z: z & 1 == 0 and x == 1),
    "test | ~test": (lambda x, y, z: x.test(1) | ~y.test(1), lambda x, y, z: x & 1 or y & 1 == 0),
}


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_conditions(name):
    build, model = CONDITIONS[name]

    def body(frame: PacketFrame) -> None:
        b = frame.b
        out = b.var(0)
        with b.if_(build(frame.input(0), frame.input(1), frame.input(2))):
            out.set(1)
        frame.output(0, out)

    cases = list(itertools.product([0, 1, 3], [0, 2, 4, 1], [0, 5, 6, 0x8000_0001]))
    got = run_packet_program([u64, u64, u32], 1, body, cases)
    assert got == [[int(bool(model(*c)))] for c in cases]


def test_short_circuit_is_jumps():
    """A combination of comparisons costs one jump per comparison, no boolean values."""
    frame = PacketFrame([u64, u64, u64], 1)
    b = frame.b
    x, y, z = frame.input(0), frame.input(1), frame.input(2)
    with b.if_(((x == 1) | (y == 2)) & ~(z > 5)):
        frame.output(0, 1)
    insns = frame.finish(assemble=False)
    bounds_check = 1
    assert conditional_jumps(insns) == 3 + bounds_check, format_program(insns)


def test_loop_with_break_and_continue():
    """Sum the even i below 16, stop at i == limit (a packet value the verifier does not know)."""
    def body(frame: PacketFrame) -> None:
        b = frame.b
        limit = frame.input(0)
        total = b.var(0)
        for i in b.range(16):
            with b.if_(i == limit):
                b.break_()
            with b.if_(i.test(1)):
                b.continue_()
            total.set(total + i)
        frame.output(0, total)

    cases = [(limit,) for limit in (0, 1, 5, 8, 15, 16, 1000)]
    got = run_packet_program([u64], 1, body, cases)
    assert got == [[sum(i for i in range(min(limit, 16)) if i % 2 == 0)] for (limit,) in cases]


def test_nested_loops():
    def body(frame: PacketFrame) -> None:
        b = frame.b
        x = frame.input(0)
        total = b.var(0)
        for i in b.range(5):
            for j in b.range(4):
                with b.if_(j > i):
                    b.break_()
                total.set(total + i * j + x)
        frame.output(0, total)

    got = run_packet_program([u64], 1, body, [(0,), (7,)])
    want = [sum(i * j + x for i in range(5) for j in range(4) if j <= i) for x in (0, 7)]
    assert got == [[w] for w in want]


def test_early_returns_leave_no_unreachable_code():
    def body(frame: PacketFrame) -> None:
        b = frame.b
        x = frame.input(0)
        with b.if_(x == 1):
            b.return_(3)
        with b.else_():
            with b.if_(x == 2):
                b.return_(4)
            with b.else_():
                b.return_(5)
        b.return_(6)  # after an if/else that returns on both paths: never reached

    frame = PacketFrame([u64], 0)
    body(frame)
    insns = frame.b.finish()
    assert unreachable(insns) == [], format_program(insns)
    from .harness import load

    with load(frame.b.assemble()) as prog:
        verdicts = [prog.test_run(frame.packet([x])).retval for x in (1, 2, 9)]
    assert verdicts == [3, 4, 5]


def test_function_called_twice():
    """A bpf-to-bpf function with a branch inside, called with different arguments."""
    def body(frame: PacketFrame) -> None:
        b = frame.b

        def clamp_scale(fb, value, scale):
            with fb.if_(value > 1000):
                fb.return_(1000 * scale)
            fb.return_(value * scale)

        f = b.function(clamp_scale)
        x, y = frame.input(0), frame.input(1)
        first = f(x, 3)
        second = f(y, x)
        frame.output(0, first)
        frame.output(1, second + first)

    def model(x: int, y: int) -> list[int]:
        first = (min(x, 1000) if x <= 1000 else 1000) * 3
        second = (y if y <= 1000 else 1000) * x
        return [first & M64, (second + first) & M64]

    cases = [(1, 2), (5000, 7), (10, 99999)]
    got = run_packet_program([u64, u64], 2, body, cases)
    assert got == [model(*c) for c in cases]
    frame = PacketFrame([u64, u64], 2)
    body(frame)
    insns = frame.finish(assemble=False)
    assert sum(1 for i in insns if i.is_call and i.reference == "clamp_scale") == 2
    assert sum(1 for i in insns if i.symbol == "clamp_scale") == 1
