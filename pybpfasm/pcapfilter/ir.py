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

    offset: Expr
    size: int


@dataclass(frozen=True)
class IPHeaderLen:
    """``4 * (frame[at] & 0xf)``: the IPv4 header's length (classic BPF's ``ldxb 4*([k]&0xf)``)."""

    at: int


@dataclass(frozen=True)
class Bin:
    op: str  # + - * / % & | ^ << >>
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg:
    operand: Expr


Expr = Union[Const, Len, Load, IPHeaderLen, Bin, Neg]


@dataclass(frozen=True)
class Cmp:
    """``left op right`` unsigned, *op* one of ``== > >=``, or ``&`` (some bit set)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class All:
    parts: tuple[Pred, ...]


@dataclass(frozen=True)
class Any:
    parts: tuple[Pred, ...]


@dataclass(frozen=True)
class Not:
    operand: Pred


Pred = Union[Cmp, All, Any, Not]
#: comparisons of constants: a predicate's value once decided, where what runs before it matters
TRUE, FALSE = Cmp("==", Const(0), Const(0)), Cmp("==", Const(0), Const(1))


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

