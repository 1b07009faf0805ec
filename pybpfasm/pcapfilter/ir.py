"""What a filter computes, over the bytes of an Ethernet frame: libpcap's meaning,
with every offset resolved (VLAN shifts applied), ready for code generation.

Values are unsigned 32-bit, as in classic BPF.  A :class:`Load` past the
bytes the program can see makes the whole filter reject the packet, as a
classic BPF load past the packet's end does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Const:
    value: int


@dataclass(frozen=True)
class Len:
    """The packet's length on the wire."""


@dataclass(frozen=True)
class Load:
    """*size* (1, 2 or 4) bytes at *offset* from the frame's start, big-endian."""

    offset: "Expr"
    size: int


@dataclass(frozen=True)
class IPHeaderLen:
    """``4 * (frame[at] & 0xf)``: the IPv4 header's length (classic BPF's ``ldxb 4*([k]&0xf)``)."""

    at: int


@dataclass(frozen=True)
class Bin:
    op: str  # + - * / % & | ^ << >>
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Neg:
    operand: "Expr"


Expr = Union[Const, Len, Load, IPHeaderLen, Bin, Neg]


@dataclass(frozen=True)
class Cmp:
    """``left op right`` unsigned, *op* one of ``== > >=``, or ``&`` (some bit set)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class All:
    parts: tuple["Pred", ...]


@dataclass(frozen=True)
class Any:
    parts: tuple["Pred", ...]


@dataclass(frozen=True)
class Not:
    operand: "Pred"


Pred = Union[Cmp, All, Any, Not]


def all_of(*parts: Pred) -> Pred:
    """The conjunction of *parts*, in order (nested conjunctions flattened)."""
    flat: list[Pred] = []
    for p in parts:
        flat.extend(p.parts if isinstance(p, All) else (p,))
    return flat[0] if len(flat) == 1 else All(tuple(flat))


def any_of(*parts: Pred) -> Pred:
    flat: list[Pred] = []
    for p in parts:
        flat.extend(p.parts if isinstance(p, Any) else (p,))
    return flat[0] if len(flat) == 1 else Any(tuple(flat))


def max_offset(node: Pred | Expr) -> int | None:
    """The end of the furthest byte a filter may load, or None if an offset is computed."""
    if isinstance(node, Load):
        if isinstance(node.offset, Const):
            return node.offset.value + node.size
        inner = max_offset(node.offset)
        bound = _bound(node.offset)
        return None if inner is None or bound is None else max(inner, bound + node.size)
    if isinstance(node, IPHeaderLen):
        return node.at + 1
    children = {Bin: lambda n: (n.left, n.right), Neg: lambda n: (n.operand,), Cmp: lambda n: (n.left, n.right),
                All: lambda n: n.parts, Any: lambda n: n.parts, Not: lambda n: (n.operand,)}
    if type(node) not in children:
        return 0
    ends = [max_offset(c) for c in children[type(node)](node)]
    return None if None in ends else max(ends, default=0)


def _bound(expr: Expr) -> int | None:
    """The largest value an offset expression can take, if it is known (constants plus header lengths)."""
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, IPHeaderLen):
        return 60
    if isinstance(expr, Bin) and expr.op == "+":
        left, right = _bound(expr.left), _bound(expr.right)
        return None if left is None or right is None else left + right
    return None
