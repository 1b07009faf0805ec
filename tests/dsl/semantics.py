"""The eDSL's integer semantics, written down as a Python reference model.

* A value has a scalar type; its register holds the value itself: unsigned
  values zero-extended, signed ones sign-extended to 64 bits.
* A binary operation's type: signed if either operand is signed (then it is
  64-bit: ``s64``), else unsigned of the wider operand, at least 32 bits.  A
  Python int takes the type of the other operand; a shift has the type of
  its left operand.
* Unsigned operations of 32 bits wrap at 32 bits, all others at 64 bits;
  signed division and modulo truncate toward zero (C).  As BPF defines it,
  ``x // 0 == 0`` and ``x % 0 == x``.
* Comparisons compare in the type two values would combine to.
* ``.cast(ty)`` converts like C: truncate, then zero- or sign-extend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from pybpfasm.dsl.types import Scalar, s64, u32, u64


def join(a: Scalar, b: Scalar | None = None) -> Scalar:
    """The type of ``a op b`` (``b`` None: a Python int or a shift amount)."""
    types = [a] if b is None else [a, b]
    if any(t.signed for t in types):
        return s64
    return u64 if max(t.size for t in types) > 4 else u32


def bits(ty: Scalar) -> int:
    """Width an operation of type *ty* computes in."""
    return 32 if ty == u32 else 64


def convert(value: int, ty: Scalar) -> int:
    """*value* converted to *ty* (C's conversion; ints wrap)."""
    width = 8 * ty.size
    value %= 1 << width
    if ty.signed and value >> (width - 1):
        value -= 1 << width
    return value


def image(value: int) -> int:
    """The 64-bit register image of a value."""
    return value % (1 << 64)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


@dataclass(frozen=True)
class Truth:
    """A model condition (Python's bool would turn ``~`` into -2)."""

    holds: bool

    def __and__(self, other: Truth) -> Truth:
        return Truth(self.holds and other.holds)

    def __or__(self, other: Truth) -> Truth:
        return Truth(self.holds or other.holds)

    def __invert__(self) -> Truth:
        return Truth(not self.holds)


Operand = Union["CInt", int]


@dataclass(frozen=True)
class CInt:
    """A typed integer with the eDSL's operators."""

    value: int
    ty: Scalar

    def _other(self, o: Operand, ty: Scalar) -> int:
        return convert(o if isinstance(o, int) else o.value, ty)

    def _binop(self, o: Operand, fn, shift: bool = False) -> CInt:
        ty = join(self.ty, None if shift or isinstance(o, int) else o.ty)
        calc = ty if ty.signed else (u32 if bits(ty) == 32 else u64)
        a, b = convert(self.value, calc), self._other(o, calc)
        return CInt(convert(fn(a, b), ty), ty)

    def _reflected(self, o: int) -> CInt:
        return CInt(convert(o, join(self.ty)), join(self.ty))

    def __add__(self, o): return self._binop(o, lambda a, b: a + b)
    def __sub__(self, o): return self._binop(o, lambda a, b: a - b)
    def __mul__(self, o): return self._binop(o, lambda a, b: a * b)
    def __and__(self, o): return self._binop(o, lambda a, b: a & b)
    def __or__(self, o): return self._binop(o, lambda a, b: a | b)
    def __xor__(self, o): return self._binop(o, lambda a, b: a ^ b)
    def __lshift__(self, o): return self._binop(o, lambda a, b: a << b, shift=True)
    def __rshift__(self, o): return self._binop(o, lambda a, b: a >> b, shift=True)
    __radd__, __rmul__, __rand__, __ror__, __rxor__ = __add__, __mul__, __and__, __or__, __xor__

    def __rsub__(self, o: int) -> CInt:
        return self._reflected(o) - self

    def __rfloordiv__(self, o: int) -> CInt:
        return self._reflected(o) // self

    def __rmod__(self, o: int) -> CInt:
        return self._reflected(o) % self

    def __rlshift__(self, o: int) -> CInt:
        return self._reflected(o) << self

    def __rrshift__(self, o: int) -> CInt:
        return self._reflected(o) >> self

    def __floordiv__(self, o: Operand) -> CInt:
        signed = join(self.ty, None if isinstance(o, int) else o.ty).signed
        return self._binop(o, lambda a, b: 0 if b == 0 else (_trunc_div(a, b) if signed else a // b))

    def __mod__(self, o: Operand) -> CInt:
        signed = join(self.ty, None if isinstance(o, int) else o.ty).signed
        return self._binop(o, lambda a, b: a if b == 0 else (a - _trunc_div(a, b) * b if signed else a % b))

    def __neg__(self) -> CInt:
        return self._reflected(0) - self

    def __invert__(self) -> CInt:
        return self ^ -1

    def cast(self, ty: Scalar) -> CInt:
        return CInt(convert(self.value, ty), ty)

    def _compare(self, o: Operand, fn) -> Truth:
        ty = join(self.ty, None if isinstance(o, int) else o.ty)
        calc = ty if ty.signed else (u32 if bits(ty) == 32 else u64)
        return Truth(fn(convert(self.value, calc), self._other(o, calc)))

    def __eq__(self, o): return self._compare(o, lambda a, b: a == b)  # type: ignore[override]
    def __ne__(self, o): return self._compare(o, lambda a, b: a != b)  # type: ignore[override]
    def __lt__(self, o): return self._compare(o, lambda a, b: a < b)
    def __le__(self, o): return self._compare(o, lambda a, b: a <= b)
    def __gt__(self, o): return self._compare(o, lambda a, b: a > b)
    def __ge__(self, o): return self._compare(o, lambda a, b: a >= b)

    __hash__ = None  # type: ignore[assignment]

    def test(self, mask: int) -> Truth:
        return self._compare(mask, lambda a, b: a & b != 0)
