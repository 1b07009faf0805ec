"""Register allocation under pressure: spills, values across helper calls, coalescing."""

from __future__ import annotations

import pytest

from pybpfasm.dsl.types import u64
from pybpfasm.text import format_program

from .harness import PacketFrame, run_packet_program
from .listing import reads_of_clobbered_registers, stack_stores

pytestmark = pytest.mark.kernel

INPUTS = [u64] * 4
CASES = [(1, 2, 3, 4), (0xFFFF_FFFF_FFFF_FFFF, 1 << 63, 12345, 0), (7, 0, 0x1234_5678_9ABC, 99)]
M64 = (1 << 64) - 1


def many_values(frame: PacketFrame, count: int, call_between: str | None = None):
    """*count* distinct values, all live until summed at the end (optionally across a call)."""
    xs = [frame.input(k) for k in range(4)]
    values = [xs[k % 4] * (k + 3) + (xs[(k + 1) % 4] ^ k) for k in range(count)]
    if call_between:
        getattr(frame.b, call_between)()
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def expected_sum(xs: tuple[int, ...], count: int) -> int:
    return sum(xs[k % 4] * (k + 3) + (xs[(k + 1) % 4] ^ k) for k in range(count)) & M64


@pytest.mark.parametrize("count", [15, 22, 30])
@pytest.mark.parametrize("call_between", [None, "ktime_get_ns", "get_prandom_u32"])
def test_many_live_values(count, call_between):
    def body(frame: PacketFrame) -> None:
        frame.output(0, many_values(frame, count, call_between))

    got = run_packet_program(INPUTS, 1, body, CASES)
    assert got == [[expected_sum(xs, count)] for xs in CASES]


def test_pressure_spills_only_when_needed():
    def listing(count: int):
        frame = PacketFrame(INPUTS, 1)
        frame.output(0, many_values(frame, count))
        return frame.finish(assemble=False)

    assert stack_stores(listing(4)) == 0
    spilled = listing(30)
    assert stack_stores(spilled) > 0, format_program(spilled)


def test_spill_code_does_not_reload_what_it_just_stored():
    """Straight after storing a spilled value, its slot is not read back (the register still has it)."""
    from pybpfasm.isa import Class, Mode, Size

    store, load = Class.STX | Mode.MEM | Size.DW, Class.LDX | Mode.MEM | Size.DW
    for call in (None, "ktime_get_ns"):
        frame = PacketFrame(INPUTS, 1)
        frame.output(0, many_values(frame, 30, call))
        insns = frame.finish(assemble=False)
        for first, second in zip(insns, insns[1:]):
            assert not (first.opcode == store and first.dst == 10 and second.opcode == load
                        and second.src == 10 and second.off == first.off and second.symbol is None), \
                format_program(insns)


def calls_in_between(frame: PacketFrame) -> None:
    """Values defined before helper calls and used after them; the clock must not go back."""
    b = frame.b
    a, c = frame.input(0) + 1, frame.input(1) * 3
    t0 = b.ktime_get_ns()
    d = a ^ c
    b.get_prandom_u32()
    t1 = b.ktime_get_ns()
    frame.output(0, a + c + d)
    ordered = b.var(0)
    with b.if_(t1 >= t0):
        ordered.set(1)
    frame.output(1, ordered)


def test_values_survive_calls():
    got = run_packet_program(INPUTS, 2, calls_in_between, CASES)
    for xs, (total, ordered) in zip(CASES, got):
        a, c = (xs[0] + 1) & M64, (xs[1] * 3) & M64
        assert (total, ordered) == ((a + c + (a ^ c)) & M64, 1)


@pytest.mark.parametrize("count", [3, 8, 20])
def test_no_value_stays_in_r1_r5_across_a_call(count):
    """In the listing, nothing reads r1-r5 after a call clobbered them."""
    for body in (calls_in_between, lambda f: f.output(0, many_values(f, count, "ktime_get_ns"))):
        frame = PacketFrame(INPUTS, 2)
        body(frame)
        insns = frame.finish(assemble=False)
        assert reads_of_clobbered_registers(insns) == [], format_program(insns)


def test_the_clobber_check_can_fail():
    """The listing check finds a value deliberately kept in r1 across a call."""
    from pybpfasm.isa import Mov, call, exit_

    insns = [Mov.imm(1, 5), call(5), Mov.reg(0, 1), exit_()]
    assert reads_of_clobbered_registers(insns) == [(2, 1)]
