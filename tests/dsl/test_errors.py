"""Build errors are one clear line naming the user's file:line, never a traceback from inside."""

from __future__ import annotations

import sys

import pytest

from pybpfasm.dsl.builder import Builder, BuildError
from pybpfasm.dsl.frame import StackOverflow
from pybpfasm.dsl.regalloc import AllocationError
from pybpfasm.dsl.errors import DSLTypeError
from pybpfasm.dsl.types import PtrType, Space, u64
from pybpfasm.dsl.values import Ref, Value
from pybpfasm.errors import BPFError
from pybpfasm.isa import SRC_X, Mul
from pybpfasm.prog import VerifierError

from .harness import PacketFrame, load
from .test_regalloc import INPUTS, many_values

HERE = __file__


def next_line() -> int:
    """The line after the caller's: where the statement under test is."""
    return sys._getframe(1).f_lineno + 1


def assert_names(err: BaseException, line: int) -> None:
    text = str(err)
    assert isinstance(err, BPFError)
    assert "\n" not in text
    assert text.startswith(f"{HERE}:{line}: "), text


def test_value_in_python_if():
    frame = PacketFrame([u64], 0)
    x = frame.input(0)
    with pytest.raises(DSLTypeError, match=r"use 'with b.if_\(value\):'") as err:
        line = next_line()
        if x:
            pass
    assert_names(err.value, line)


def test_conditions_with_and_or():
    frame = PacketFrame([u64, u64], 0)
    x, y = frame.input(0), frame.input(1)
    with pytest.raises(DSLTypeError, match=r"combine conditions with & \| ~") as err:
        line = next_line()
        _ = (x == 1) and (y == 2)
    assert_names(err.value, line)


def test_else_without_if():
    b = Builder("xdp")
    with pytest.raises(BuildError, match=r"else_\(\) must directly follow") as err:
        line = next_line()
        with b.else_():
            pass
    assert_names(err.value, line)


def test_else_not_directly_after_if():
    frame = PacketFrame([u64], 0)
    b, x = frame.b, frame.input(0)
    with b.if_(x == 1):
        b.return_(1)
    x = x + 1  # code between the if_ block and else_()
    with pytest.raises(BuildError) as err:
        line = next_line()
        with b.else_():
            pass
    assert_names(err.value, line)


def test_break_outside_loop():
    b = Builder("xdp")
    with pytest.raises(BuildError, match=r"outside b\.range") as err:
        line = next_line()
        b.break_()
    assert_names(err.value, line)


def test_impossible_allocation():
    """More live values than ten registers and 512 bytes of stack can hold."""
    frame = PacketFrame(INPUTS, 1)
    frame.output(0, many_values(frame, 80, "ktime_get_ns"))
    with pytest.raises(StackOverflow, match="more values are live at once") as err:
        frame.finish()
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{sys.modules[many_values.__module__].__file__}:"), text


def test_value_read_before_assignment():
    frame = PacketFrame([u64], 1)
    never = Value(frame.b, frame.b.vreg("never"), u64)
    line = next_line()
    frame.output(0, never + 1)
    with pytest.raises(AllocationError, match="read before any value is assigned") as err:
        frame.finish()
    assert_names(err.value, line)


def test_instructions_carry_the_users_line():
    frame = PacketFrame([u64], 1)
    x = frame.input(0)
    line = next_line()
    y = x * 7
    frame.output(0, y)
    muls = [i for i in frame.finish(assemble=False) if i.opcode & ~SRC_X in (Mul.imm(0, 0).opcode, Mul.imm32(0, 0).opcode)]
    assert [(m.source.file, m.source.line) for m in muls] == [(HERE, line)]


@pytest.mark.kernel
def test_verifier_error_names_the_users_line():
    """A packet read without a bounds check: the kernel rejects it, the error points here."""
    frame = PacketFrame([u64], 1)
    b = frame.b
    line = next_line()
    beyond = Ref(b, frame.data.reg, 4096, u64, Space.PACKET).rvalue()
    frame.output(0, beyond)
    with pytest.raises(VerifierError) as err:
        load(frame.finish())
    assert f"{HERE}:{line}" in str(err.value), str(err.value)


def test_pointer_arithmetic_is_limited():
    frame = PacketFrame([u64], 0)
    ptr = Value(frame.b, frame.data.reg, PtrType(None, Space.PACKET))
    with pytest.raises(DSLTypeError, match=r"allows \+ and -, not mul"):
        ptr * 2
