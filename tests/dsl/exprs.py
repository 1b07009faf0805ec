"""Random expression trees and one interpreter for them over two backends.

The same tree is built as eDSL code (:class:`DslBackend`, emitting BPF) and
evaluated by the reference model (:class:`ModelBackend`, :mod:`.semantics`),
so both sides apply the very same Python operators in the same order.

Trees are tuples: ``("in", k)``, ``("bin", op, lhs, rhs)`` (rhs a tree or
``("const", n)``), ``("rbin", op, n, rhs)`` for ``n op rhs``, ``("neg", e)``,
``("inv", e)``, ``("cast", ty, e)``, ``("sel", cond, e1, e2)``; conditions
are ``("cmp", op, e1, e2)``, ``("test", e, mask)``, ``("and"|"or", c1, c2)``
and ``("not", c)``.  Shift amounts are reduced below the operation's width
(``k % width`` for constants, ``e & (width - 1)`` for trees): larger shifts
are undefined in C and rejected by the verifier.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Sequence

from hypothesis import strategies as st

from pybpfasm.dsl.builder import Builder
from pybpfasm.dsl.types import Scalar, s8, s16, s32, s64, u8, u16, u32, u64
from pybpfasm.dsl.values import Value

from .semantics import CInt, Truth, bits, convert, join

INPUT_TYPES = (u64, u64, u32, u32, s64, s32, u8, s16)
CAST_TYPES = (u8, u16, u32, u64, s8, s16, s32, s64)

BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv,
    "%": operator.mod, "&": operator.and_, "|": operator.or_, "^": operator.xor,
    "<<": operator.lshift, ">>": operator.rshift,
}
REFLECTED = ("+", "-", "*", "//", "%", "&", "|", "^")
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def interesting(ty: Scalar) -> st.SearchStrategy[int]:
    """Values of *ty*, boundaries first."""
    width = 8 * ty.size
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if ty.signed else (0, (1 << width) - 1)
    edges = sorted({v for v in (0, 1, 2, -1, lo, hi, lo + 1, hi - 1, 1 << 31, (1 << 32) - 1, 7)
                    if lo <= v <= hi})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


constants = st.one_of(
    st.sampled_from([0, 1, -1, 3, 31, 32, 63, 255, 0x7FFF_FFFF, -(1 << 31), 0xFFFF_FFFF, 1 << 32,
                     (1 << 63) - 1, 1 << 63, (1 << 64) - 1]),
    st.integers(-(1 << 31), (1 << 31) - 1),
    st.integers(0, (1 << 64) - 1),
)


def expressions(depth: int = 3) -> st.SearchStrategy[tuple]:
    """Expression trees up to *depth* operators deep."""
    leaves = st.builds(lambda k: ("in", k), st.integers(0, len(INPUT_TYPES) - 1))
    if depth == 0:
        return leaves
    # deferred: hypothesis would otherwise spell out the nested strategies' huge repr
    sub = st.deferred(lambda: expressions(depth - 1))
    rhs = st.one_of(sub, st.builds(lambda n: ("const", n), constants))
    return st.one_of(
        leaves,
        st.tuples(st.just("bin"), st.sampled_from(sorted(BINOPS)), sub, rhs),
        st.tuples(st.just("rbin"), st.sampled_from(REFLECTED), constants, sub),
        st.tuples(st.just("neg"), sub),
        st.tuples(st.just("inv"), sub),
        st.tuples(st.just("cast"), st.sampled_from(CAST_TYPES), sub),
        st.tuples(st.just("sel"), st.deferred(lambda: conditions(depth - 1)), sub, sub),
    )


def conditions(depth: int) -> st.SearchStrategy[tuple]:
    """A comparison or JSET over expressions of *depth*, or one ``&``/``|``/``~`` of them."""
    sub = st.deferred(lambda: expressions(depth))
    rhs = st.one_of(sub, st.builds(lambda n: ("const", n), constants))
    atom = st.one_of(
        st.tuples(st.just("cmp"), st.sampled_from(sorted(COMPARISONS)), sub, rhs),
        st.tuples(st.just("test"), sub, constants),
    )
    return st.one_of(
        atom,
        st.tuples(st.sampled_from(["and", "or"]), atom, atom),
        st.tuples(st.just("not"), st.one_of(atom, st.tuples(st.sampled_from(["and", "or"]), atom, atom))),
    )


class ModelBackend:
    """Evaluates a tree with the reference semantics on known inputs."""

    def __init__(self, values: Sequence[int]) -> None:
        self.values = values

    def input(self, k: int) -> CInt:
        return CInt(convert(self.values[k], INPUT_TYPES[k]), INPUT_TYPES[k])

    def select(self, cond: Callable[[], Truth], then: Callable[[], CInt], other: Callable[[], CInt]) -> CInt:
        holds, x, y = cond().holds, then(), other()
        ty = join(x.ty, y.ty)
        return (x if holds else y).cast(ty)

    def type_of(self, v: CInt) -> Scalar:
        return v.ty


class DslBackend:
    """Emits a tree as eDSL code; inputs are Values the caller loaded."""

    def __init__(self, b: Builder, inputs: Callable[[int], Value]) -> None:
        self.b, self.input = b, inputs

    def select(self, cond: Callable[[], Any], then: Callable[[], Value], other: Callable[[], Value]) -> Value:
        b = self.b
        reg = b.vreg("sel")
        with b.if_(cond()):
            x = then()
            b.mov(reg, x.reg)
        with b.else_():
            y = other()
            b.mov(reg, y.reg)
        return Value(b, reg, join(x.ty, y.ty))

    def type_of(self, v: Value) -> Scalar:
        return v.ty


def evaluate(tree: tuple, be) -> Any:
    kind = tree[0]
    if kind == "in":
        return be.input(tree[1])
    if kind == "bin":
        _, op, lhs, rhs = tree
        left = evaluate(lhs, be)
        if op in ("<<", ">>"):
            width = bits(join(be.type_of(left)))
            right = rhs[1] % width if rhs[0] == "const" else evaluate(rhs, be) & (width - 1)
        else:
            right = rhs[1] if rhs[0] == "const" else evaluate(rhs, be)
        return BINOPS[op](left, right)
    if kind == "rbin":
        _, op, n, rhs = tree
        return BINOPS[op](n, evaluate(rhs, be))
    if kind == "neg":
        return -evaluate(tree[1], be)
    if kind == "inv":
        return ~evaluate(tree[1], be)
    if kind == "cast":
        return evaluate(tree[2], be).cast(tree[1])
    if kind == "sel":
        _, cond, e1, e2 = tree
        return be.select(lambda: condition(cond, be), lambda: evaluate(e1, be), lambda: evaluate(e2, be))
    raise ValueError(f"not an expression: {tree!r}")


def condition(tree: tuple, be) -> Any:
    kind = tree[0]
    if kind == "cmp":
        _, op, lhs, rhs = tree
        left = evaluate(lhs, be)
        return COMPARISONS[op](left, rhs[1] if rhs[0] == "const" else evaluate(rhs, be))
    if kind == "test":
        return evaluate(tree[1], be).test(tree[2])
    if kind == "and":
        return condition(tree[1], be) & condition(tree[2], be)
    if kind == "or":
        return condition(tree[1], be) | condition(tree[2], be)
    if kind == "not":
        return ~condition(tree[1], be)
    raise ValueError(f"not a condition: {tree!r}")
