"""A filter's predicate (:mod:`.ir`) as eDSL instructions: short-circuit jumps,
32-bit unsigned arithmetic as in classic BPF, and a reject on any load out of
bounds or division by zero (classic BPF returns 0 for both)."""

from __future__ import annotations

from typing import Protocol

from pybpfasm.dsl.ir import Op
from pybpfasm.dsl.scalars import u32
from pybpfasm.dsl.values import Cond, Value, any_of
from pybpfasm.isa import AluOp, JumpOp, OpCode

from . import ir
from .facts import Facts, compared_values, equality, first_atom, never_true, simplify, with_fact

_ALU = {"+": AluOp.ADD, "-": AluOp.SUB, "*": AluOp.MUL, "/": AluOp.DIV, "%": AluOp.MOD, "&": AluOp.AND,
        "|": AluOp.OR, "^": AluOp.XOR, "<<": AluOp.LSH, ">>": AluOp.RSH}
_FOLD = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
         "/": lambda a, b: a // b, "%": lambda a, b: a % b, "&": lambda a, b: a & b, "|": lambda a, b: a | b,
         "^": lambda a, b: a ^ b, "<<": lambda a, b: a << (b & 31), ">>": lambda a, b: a >> (b & 31)}
_JUMPS = {"==": JumpOp.JEQ, ">": JumpOp.JGT, ">=": JumpOp.JGE, "&": JumpOp.JSET}
_HOLDS = {"==": lambda a, b: a == b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "&": lambda a, b: bool(a & b)}
MASK32 = 0xFFFFFFFF
#: a load tested against this many constants at most is a dispatch (one load, then a case each)
MAX_CASES = 6
#: dispatches nest this deep at most (each case repeats what the facts leave of the predicate)
MAX_DISPATCH_DEPTH = 4


class FrameBytes(Protocol):
    """What the generated code reads the frame through (:mod:`.packetbytes`)."""

    #: an skb (its VLAN tag may be beside the bytes), not raw frame bytes
    skb: bool

    def prepare(self, names: set[str]) -> None:
        """Compute ``len`` and the ancillary values *names* now, on the path every test shares."""

    def length(self) -> Value: ...

    def load(self, offset: int | Value, size: int, reject: str) -> Value: ...

    def ancillary(self, name: str) -> int | Value: ...


def emit(b, pred: ir.Pred, frame: FrameBytes) -> Cond:
    """Emit *pred* over *frame*; the condition that it matched (a 0/1 register)."""
    verdict = b.var(0, u32)
    frame.prepare(ir.uses(pred))
    match, no_match = b.label("pf_match"), b.label("pf_reject")
    _Emitter(b, frame, no_match).pred(pred, match, no_match, {}, 0)
    b.place(match)
    verdict.set(1)
    b.place(no_match)
    return verdict != 0


class _Emitter:
    def __init__(self, b, frame: FrameBytes, reject: str) -> None:
        self.b, self.frame, self.reject = b, frame, reject

    def jump(self, target: str) -> None:
        self.b.emit(Op(OpCode.jump(JumpOp.JA), reference=target))

    def pred(self, p: ir.Pred, yes: str, no: str, facts: Facts, depth: int) -> None:
        """Jump to *yes* if *p* holds, else to *no* (never falls through), knowing *facts*."""
        b = self.b
        decided = simplify(p, facts)
        if isinstance(decided, bool):
            self.jump(yes if decided else no)
            return
        p = decided
        if no == self.reject and never_true(p):  # false or a load past the end: the same here
            self.jump(no)
            return
        if depth < MAX_DISPATCH_DEPTH and self.dispatch(p, yes, no, facts, depth):
            return
        if isinstance(p, ir.Not):
            self.pred(p.operand, no, yes, facts, depth)
        elif isinstance(p, (ir.All, ir.Any)):
            conjunction = isinstance(p, ir.All)
            for part in p.parts[:-1]:
                nxt = b.label("pf")
                if conjunction:
                    self.pred(part, nxt, no, facts, depth)
                else:
                    self.pred(part, yes, nxt, facts, depth)
                b.place(nxt)
            self.pred(p.parts[-1], yes, no, facts, depth)
        else:
            self.compare(p, yes, no)

    def dispatch(self, p: ir.Pred, yes: str, no: str, facts: Facts, depth: int) -> bool:
        """If *p* first tests a load against a constant and tests that load again later (an
        ethertype, a protocol byte), load it once and emit what is left of *p* for each
        value (values that leave the same predicate share it); False if not worth it.

        The load is the one *p* evaluates first, so a load past the end rejects
        exactly as it would have."""
        eq = equality(first_atom(p))
        if eq is None:
            return False
        key = eq[0]
        values = compared_values(p, key)
        if len(values) > MAX_CASES or _count(p, key) < 2:
            return False
        cases: dict[object, list[int]] = {}
        for value in values:
            cases.setdefault(simplify(p, with_fact(facts, key, value)), []).append(value)
        b = self.b
        loaded = self.frame.load(key[0], key[1], self.reject)
        for rest, group in cases.items():
            other = b.label("pf_case")
            b.branch(~any_of(*(Cond.compare(JumpOp.JEQ, loaded, v) for v in group)), other, True)
            known = with_fact(facts, key, group[0]) if len(group) == 1 else facts
            self.emit_decided(rest, yes, no, known, depth + 1)
            b.place(other)
        self.pred(p, yes, no, with_fact(facts, key, frozenset(values)), depth + 1)
        return True

    def emit_decided(self, p, yes: str, no: str, facts: Facts, depth: int) -> None:
        if isinstance(p, bool):
            self.jump(yes if p else no)
        else:
            self.pred(p, yes, no, facts, depth)

    def compare(self, p: ir.Cmp, yes: str, no: str) -> None:
        b = self.b
        left, right = self.expr(p.left), self.expr(p.right)
        if isinstance(left, int) and isinstance(right, int):
            self.jump(yes if _HOLDS[p.op](left, right) else no)
            return
        if isinstance(left, int):
            left = b.value(left, u32)
        b.branch(Cond.compare(_JUMPS[p.op], left, right), yes, True)
        self.jump(no)

    def expr(self, e: ir.Expr) -> int | Value:
        """*e* as a Python int (known now) or a register."""
        b = self.b
        if isinstance(e, ir.Const):
            return e.value & MASK32
        if isinstance(e, ir.Len):
            return self.frame.length()
        if isinstance(e, ir.Load):
            return self.frame.load(self.expr(e.offset), e.size, self.reject)
        if isinstance(e, ir.IPHeaderLen):
            return (self.frame.load(self.expr(e.at), 1, self.reject) & 0xF) << 2
        if isinstance(e, ir.Ancillary):
            return self.frame.ancillary(e.name)
        if isinstance(e, ir.Neg):
            v = self.expr(e.operand)
            return -v & MASK32 if isinstance(v, int) else -v
        left, right = self.expr(e.left), self.expr(e.right)
        if isinstance(left, int) and isinstance(right, int):
            if e.op in ("/", "%") and right == 0:
                self.jump(self.reject)
                return 0
            return _FOLD[e.op](left, right) & MASK32
        if isinstance(left, int):
            left = b.value(left, u32)
        if e.op in ("/", "%") and not isinstance(right, int):
            b.branch(right == 0, self.reject, True)  # classic BPF: x / 0 rejects the packet
        return b.binop(_ALU[e.op], left, right)


def _count(p: ir.Pred, key: tuple[int, int]) -> int:
    """How many equality tests of load *key* *p* makes."""
    if isinstance(p, ir.Cmp):
        eq = equality(p)
        return int(eq is not None and eq[0] == key)
    parts = (p.operand,) if isinstance(p, ir.Not) else p.parts
    return sum(_count(part, key) for part in parts)
