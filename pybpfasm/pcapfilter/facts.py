"""What is known about the frame on one path of a filter, and the predicate it leaves.

A *fact* is the value of a load at a constant offset, or values it is known
not to have (``ethertype == 0x800`` on this path, or neither 0x800 nor
0x86dd), learnt where the code dispatches on that load
(:meth:`~.codegen._Emitter.dispatch`).  :func:`simplify` decides the
comparisons the facts answer, which is how one ethertype test serves every
primitive of ``tcp and port 80 and host 10.1.2.3`` (libpcap's optimiser does
the same by data-flow analysis).

Deciding a comparison from a fact skips its load, and never changes what a
load past the end does: the fact came from an earlier load of the very same
bytes on the same path, so that load was in bounds.  A part that decides a
conjunction (false) or a disjunction (true) keeps the parts before it, which
still run: one of their loads may be past the end and reject the packet.
"""

from __future__ import annotations

from typing import Union

from . import ir

#: (offset, size) of a load -> its value (an int) or the values it does not have (a frozenset)
Facts = dict[tuple[int, int], Union[int, frozenset]]
Decided = Union[ir.Pred, bool]
MASK32 = 0xFFFFFFFF
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "&": lambda a, b: a & b,
        "|": lambda a, b: a | b, "^": lambda a, b: a ^ b, "<<": lambda a, b: a << (b & 31),
        ">>": lambda a, b: a >> (b & 31)}
_HOLDS = {"==": lambda a, b: a == b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
          "&": lambda a, b: bool(a & b)}


def load_key(e: ir.Expr) -> tuple[int, int] | None:
    """The (offset, size) of the one constant-offset load *e* is a function of, if that is all it is."""
    if isinstance(e, ir.Load) and isinstance(e.offset, ir.Const):
        return e.offset.value, e.size
    if isinstance(e, ir.Bin) and e.op in _OPS and isinstance(e.right, ir.Const):
        return load_key(e.left)
    return None


def _evaluate(e: ir.Expr, value: int) -> int:
    if isinstance(e, ir.Load):
        return value
    return _OPS[e.op](_evaluate(e.left, value), e.right.value) & MASK32


def atom_key(p: ir.Pred) -> tuple[int, int] | None:
    """The load a comparison of one constant-offset load with a constant tests, if it is one."""
    if isinstance(p, ir.Cmp) and isinstance(p.right, ir.Const):
        return load_key(p.left)
    return None


def equality(p: ir.Pred) -> tuple[tuple[int, int], int] | None:
    """(key, value) for ``load == constant``."""
    if isinstance(p, ir.Cmp) and p.op == "==" and isinstance(p.right, ir.Const) and isinstance(p.left, ir.Load):
        key = load_key(p.left)
        if key is not None:
            return key, p.right.value
    return None


def _decide(p: ir.Cmp, facts: Facts) -> bool | None:
    key = atom_key(p)
    known = facts.get(key) if key is not None else None
    if isinstance(known, int):
        return _HOLDS[p.op](_evaluate(p.left, known), p.right.value)
    eq = equality(p)
    if isinstance(known, frozenset) and eq is not None and eq[1] in known:
        return False
    return None


def simplify(p: ir.Pred, facts: Facts) -> Decided:
    """*p* with every comparison the facts decide replaced, and folded."""
    if isinstance(p, ir.Cmp):
        decided = _decide(p, facts) if facts else None
        return p if decided is None else decided
    if isinstance(p, ir.Not):
        inner = simplify(p.operand, facts)
        return (not inner) if isinstance(inner, bool) else ir.Not(inner)
    conjunction = isinstance(p, ir.All)
    parts = []
    for part in p.parts:
        s = simplify(part, facts)
        if s is (not conjunction):  # a false part of a conjunction, a true part of a disjunction
            if not parts:
                return s
            # what comes before still runs: one of its loads may be past the end (a reject)
            parts.append(ir.TRUE if s else ir.FALSE)
            break
        if s is not conjunction:
            parts.append(s)
    if not parts:
        return conjunction
    return (ir.all_of if conjunction else ir.any_of)(*parts)


def never_true(p: ir.Pred, holds: bool = True) -> bool:
    """Whether *p* can only come out false, or reject (*holds* False: only true, or reject)."""
    if isinstance(p, ir.Cmp):
        return p == (ir.FALSE if holds else ir.TRUE)
    if isinstance(p, ir.Not):
        return never_true(p.operand, not holds)
    decisive = isinstance(p, ir.All) == holds  # one part decides: a conjunction that is never true
    test = any if decisive else all
    return test(never_true(part, holds) for part in p.parts)


def with_fact(facts: Facts, key: tuple[int, int], value: int | frozenset) -> Facts:
    """*facts* and one more (a known value wins over values excluded)."""
    known = facts.get(key)
    if isinstance(known, int):
        return facts
    if isinstance(value, frozenset) and isinstance(known, frozenset):
        value = value | known
    return {**facts, key: value}


def first_atom(p: ir.Pred) -> ir.Cmp:
    """The comparison evaluated first."""
    while not isinstance(p, ir.Cmp):
        p = p.operand if isinstance(p, ir.Not) else p.parts[0]
    return p


def compared_values(p: ir.Pred, key: tuple[int, int]) -> list[int]:
    """The constants *p* compares the load *key* with for equality, in order of appearance."""
    if isinstance(p, ir.Cmp):
        eq = equality(p)
        return [eq[1]] if eq is not None and eq[0] == key else []
    parts = (p.operand,) if isinstance(p, ir.Not) else p.parts
    return list(dict.fromkeys(v for part in parts for v in compared_values(part, key)))
