"""A filter's predicate (:mod:`.ir`) as eDSL instructions: short-circuit jumps,
32-bit unsigned arithmetic as in classic BPF, and a reject on any load out of
bounds or division by zero (classic BPF returns 0 for both)."""

from __future__ import annotations

from typing import Protocol

from pybpfasm.dsl.ir import Op
from pybpfasm.dsl.scalars import u32
from pybpfasm.dsl.values import Cond, Value
from pybpfasm.isa import AluOp, JumpOp, OpCode

from . import ir

_ALU = {"+": AluOp.ADD, "-": AluOp.SUB, "*": AluOp.MUL, "/": AluOp.DIV, "%": AluOp.MOD, "&": AluOp.AND,
        "|": AluOp.OR, "^": AluOp.XOR, "<<": AluOp.LSH, ">>": AluOp.RSH}
_FOLD = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
         "/": lambda a, b: a // b, "%": lambda a, b: a % b, "&": lambda a, b: a & b, "|": lambda a, b: a | b,
         "^": lambda a, b: a ^ b, "<<": lambda a, b: a << (b & 31), ">>": lambda a, b: a >> (b & 31)}
_JUMPS = {"==": JumpOp.JEQ, ">": JumpOp.JGT, ">=": JumpOp.JGE, "&": JumpOp.JSET}
_HOLDS = {"==": lambda a, b: a == b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "&": lambda a, b: bool(a & b)}
MASK32 = 0xFFFFFFFF


class FrameBytes(Protocol):
    """What the generated code reads the frame through (:mod:`.packetbytes`)."""

    def length(self) -> Value: ...

    def load(self, offset: int | Value, size: int, reject: str) -> Value: ...


def emit(b, pred: ir.Pred, frame: FrameBytes) -> Cond:
    """Emit *pred* over *frame*; the condition that it matched (a 0/1 register)."""
    verdict = b.var(0, u32)
    match, no_match = b.label("pf_match"), b.label("pf_reject")
    _Emitter(b, frame, no_match).pred(pred, match, no_match)
    b.place(match)
    verdict.set(1)
    b.place(no_match)
    return verdict != 0


class _Emitter:
    def __init__(self, b, frame: FrameBytes, reject: str) -> None:
        self.b, self.frame, self.reject = b, frame, reject

    def jump(self, target: str) -> None:
        self.b.emit(Op(OpCode.jump(JumpOp.JA), reference=target))

    def pred(self, p: ir.Pred, yes: str, no: str) -> None:
        """Jump to *yes* if *p* holds, else to *no* (never falls through)."""
        b = self.b
        if isinstance(p, ir.Not):
            self.pred(p.operand, no, yes)
        elif isinstance(p, (ir.All, ir.Any)):
            for part in p.parts[:-1]:
                nxt = b.label("pf")
                self.pred(part, nxt, no) if isinstance(p, ir.All) else self.pred(part, yes, nxt)
                b.place(nxt)
            self.pred(p.parts[-1], yes, no)
        else:
            self.compare(p, yes, no)

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
            return (self.frame.load(e.at, 1, self.reject) & 0xF) << 2
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
