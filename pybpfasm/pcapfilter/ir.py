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

    at: Expr


@dataclass(frozen=True)
class Ancillary:
    """What the kernel keeps beside an skb's bytes (classic BPF's ancillary loads):
    ``vlan_present`` (1 if a tag was taken out of the packet), ``vlan_tci``, and
    ``vlan_shift``, the bytes a first ``vlan`` moves later offsets by: 0 for such a tag,
    else 4 (a tag in the packet)."""

    name: str


@dataclass(frozen=True)
class Bin:
    op: str  # + - * / % & | ^ << >>
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg:
    operand: Expr


Expr = Union[Const, Len, Load, IPHeaderLen, Ancillary, Bin, Neg]


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


def uses(node: Pred | Expr) -> set[str]:
    """What beside the bytes *node* reads: ``len`` and the :class:`Ancillary` names."""
    if isinstance(node, Len):
        return {"len"}
    if isinstance(node, Ancillary):
        return {node.name}
    children = {Load: lambda n: (n.offset,), IPHeaderLen: lambda n: (n.at,), Bin: lambda n: (n.left, n.right),
                Neg: lambda n: (n.operand,), Cmp: lambda n: (n.left, n.right), All: lambda n: n.parts,
                Any: lambda n: n.parts, Not: lambda n: (n.operand,)}.get(type(node))
    return set().union(*(uses(c) for c in children(node))) if children else set()


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

