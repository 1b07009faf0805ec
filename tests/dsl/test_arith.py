"""Arithmetic, casts and comparisons in the kernel agree with the reference model.

Hypothesis draws expression trees over typed inputs read from an XDP
packet; each tree is built with the eDSL, loaded, run with
BPF_PROG_TEST_RUN on drawn inputs, and its 64-bit result compared with
:mod:`.semantics`.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfasm.dsl.types import s32, s64, u32, u64

from .exprs import INPUT_TYPES, DslBackend, ModelBackend, evaluate, expressions, interesting
from .harness import run_packet_program
from .semantics import image

pytestmark = pytest.mark.kernel

input_vectors = st.tuples(*(interesting(ty) for ty in INPUT_TYPES))


def check(trees: list[tuple], cases: list[tuple[int, ...]]) -> None:
    def body(frame) -> None:
        be = DslBackend(frame.b, frame.input)
        for k, tree in enumerate(trees):
            frame.output(k, evaluate(tree, be))

    got = run_packet_program(INPUT_TYPES, len(trees), body, cases)
    for values, outputs in zip(cases, got):
        model = ModelBackend(values)
        want = [image(evaluate(tree, model).value) for tree in trees]
        assert outputs == want, f"inputs {values}: kernel {outputs} != model {want} for {trees}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(expressions(), min_size=1, max_size=3), st.lists(input_vectors, min_size=1, max_size=4))
def test_expressions_match_the_model(trees, cases):
    check(trees, cases)


@pytest.mark.parametrize("lhs_ty, rhs_ty", [(u32, u32), (u64, u64), (s64, s64), (s32, s32), (u32, s64)])
def test_division_by_zero_is_bpfs(lhs_ty, rhs_ty):
    """x / 0 == 0 and x % 0 == x, for a zero in a register and a zero constant."""
    def body(frame) -> None:
        x, zero = frame.input(0).cast(lhs_ty), frame.input(1).cast(rhs_ty)
        frame.output(0, x // zero)
        frame.output(1, x % zero)
        frame.output(2, x // 0)
        frame.output(3, x % 0)

    x = -7 if lhs_ty.signed else 7
    [out] = run_packet_program(INPUT_TYPES, 4, body, [(x, 0, 0, 0, 0, 0, 0, 0)])
    assert out == [0, image(x), 0, image(x)]


def test_signed_division_truncates_toward_zero():
    def body(frame) -> None:
        a, b = frame.input(4), frame.input(5)  # s64, s32
        frame.output(0, a // b)
        frame.output(1, a % b)

    cases = [(0, 0, 0, 0, -7, 2, 0, 0), (0, 0, 0, 0, 7, -2, 0, 0), (0, 0, 0, 0, -(1 << 63), -1, 0, 0)]
    got = run_packet_program(INPUT_TYPES, 2, body, cases)
    assert got == [[image(-3), image(-1)], [image(-3), 1], [image(-(1 << 63)), 0]]


def _boundary_vectors() -> list[tuple[int, ...]]:
    """Inputs at each type's edges, plus a few fixed pseudo-random ones."""
    import random

    rng = random.Random(2024)
    vectors = []
    for pick in (lambda lo, hi: lo, lambda lo, hi: hi, lambda lo, hi: 0, lambda lo, hi: -1 if lo else 1,
                 lambda lo, hi: rng.randint(lo, hi), lambda lo, hi: rng.randint(lo, hi)):
        row = []
        for ty in INPUT_TYPES:
            width = 8 * ty.size
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if ty.signed else (0, (1 << width) - 1)
            row.append(pick(lo, hi))
        vectors.append(tuple(row))
    return vectors + [tuple(reversed(v)) for v in vectors[:2]]


PAIRS = [(i, j) for i in range(len(INPUT_TYPES)) for j in range(len(INPUT_TYPES))]


@pytest.mark.parametrize("op", ["+", "-", "*", "//", "%", "&", "|", "^", "<<", ">>"])
def test_every_type_pair(op):
    """``a op b`` for every pair of input types, and the same with a constant."""
    trees = [("bin", op, ("in", i), ("in", j)) for i, j in PAIRS]
    trees += [("bin", op, ("in", i), ("const", c)) for i in range(len(INPUT_TYPES)) for c in (0, -1, 5, 1 << 40)]
    check(trees, _boundary_vectors())


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_every_comparison_pair(op):
    zero = ("bin", "&", ("in", 0), ("const", 0))
    one = ("bin", "|", zero, ("const", 1))
    trees = [("sel", ("cmp", op, ("in", i), ("in", j)), one, zero) for i, j in PAIRS]
    trees += [("sel", ("cmp", op, ("in", i), ("const", c)), one, zero)
              for i in range(len(INPUT_TYPES)) for c in (0, -1, 1 << 31, 1 << 40)]
    check(trees, _boundary_vectors())


def test_casts_after_arithmetic():
    """Every input, and every sum of two inputs, converted to every type."""
    from .exprs import CAST_TYPES

    sums = [("bin", "+", ("in", i), ("in", j)) for i, j in PAIRS[::3]]
    trees = [("cast", ty, e) for ty in CAST_TYPES for e in [("in", k) for k in range(len(INPUT_TYPES))] + sums]
    check(trees, _boundary_vectors())


def test_unary_operators():
    trees = [(kind, ("in", k)) for kind in ("neg", "inv") for k in range(len(INPUT_TYPES))]
    trees += [("neg", ("cast", ty, ("in", 0))) for ty in (u32, u64, s32, s64)]
    check(trees, _boundary_vectors())


def test_reflected_operators():
    """``n op value`` with the Python int on the left (it takes the value's type)."""
    trees = [("rbin", op, n, ("in", k)) for op in ("-", "//", "%") for n in (0, 7, -1, 1 << 40)
             for k in range(len(INPUT_TYPES))]
    trees += [("rbin", op, n, ("bin", "&", ("in", k), ("const", 31))) for op in ("<<", ">>")
              for n in (1, -1, 0x8000_0000) for k in (0, 2, 4)]
    check(trees, _boundary_vectors())


class _CountedInt(int):
    """An int subclass that counts comparisons (as IntEnum members are int subclasses)."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        type(self).compared += 1
        return int(self) == other

    __hash__ = int.__hash__


def test_an_int_subclass_fits_an_immediate_without_a_scan():
    """``x in range(...)`` walks the range for an int subclass: socket.AF_UNIX hung a build."""
    from pybpfasm.dsl.values import fits_imm

    assert fits_imm(_CountedInt(-(1 << 31) + 5)) and not fits_imm(_CountedInt(1 << 31))
    assert _CountedInt.compared == 0
