"""The eDSL's intermediate form: instructions over virtual registers.

An :class:`Op` is an instruction whose ``dst``/``src`` may be a :class:`VReg`
(allocated later) or a physical register number (r0-r5 around calls, r10).
:class:`Label` marks a jump target.  The register allocator
(:mod:`.regalloc`) reads :func:`defs_uses` to compute liveness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from ..isa import (
    CALL,
    CALLX,
    END_OP,
    EXIT,
    GOTOL,
    JA,
    JCOND,
    LD_IMM64,
    MOV_OP,
    NEG_OP,
    SRC_X,
    AtomicOp,
    Class,
    Instruction,
    Mode,
    SourceLocation,
)

#: registers a helper call clobbers; r0 also receives the result
CALLER_SAVED = (0, 1, 2, 3, 4, 5)
FP = 10
#: the opcode's class, operation and mode fields (isa.py names their values, not the masks)
CLASS_MASK, OP_MASK, MODE_MASK = 0x07, 0xF0, 0xE0
#: the flag that makes an atomic operation return the old value
FETCH = AtomicOp.FETCH_ADD ^ AtomicOp.ADD


def alu_opcode(code: int, *, wide: bool = True, x: bool = False) -> int:
    """The opcode of ALU operation *code* (an ``AluOp.code``, ``NEG_OP``, ``END_OP``):
    64-bit unless not *wide*, with a register source if *x*."""
    return (Class.ALU64 if wide else Class.ALU) | code | (SRC_X if x else 0)


def jump_opcode(code: int, *, wide: bool = True, x: bool = False) -> int:
    """The opcode of conditional jump *code* (a ``JumpOp.code``): comparing 64 bits
    unless not *wide*, against a register if *x*."""
    return (Class.JMP if wide else Class.JMP32) | code | (SRC_X if x else 0)


#: ``dst = src``, the register copy the allocator coalesces
MOV64_X = alu_opcode(MOV_OP, x=True)


class VReg:
    """A virtual register; ``name`` helps reading dumps and allocation errors."""

    __slots__ = ("id", "name")

    def __init__(self, id_: int, name: str = "") -> None:
        self.id, self.name = id_, name

    def __repr__(self) -> str:
        return f"%{self.name or 'v'}{self.id}"


Operand = Union[int, VReg]


@dataclass
class Op:
    """One instruction over virtual or physical registers."""

    opcode: int
    dst: Operand = 0
    src: Operand = 0
    off: int = 0
    imm: int = 0
    reference: Optional[str] = None
    source: Optional[SourceLocation] = None
    #: number of argument registers (r1..) a call reads
    nargs: int = 0

    def lower(self, dst: int, src: int, symbol: str | None) -> Instruction:
        return Instruction(self.opcode, dst, src, self.off, self.imm, symbol=symbol,
                           reference=self.reference, source=self.source)

    @property
    def is_branch(self) -> bool:
        cls = self.opcode & CLASS_MASK
        return cls in (Class.JMP, Class.JMP32) and self.opcode not in (CALL, CALLX, EXIT)

    @property
    def is_unconditional(self) -> bool:
        return self.opcode in (JA, GOTOL, EXIT)


@dataclass
class Label:
    name: str


Item = Union[Op, Label]


def defs_uses(op: Op) -> tuple[tuple[Operand, ...], tuple[Operand, ...]]:
    """Registers *op* writes and reads (call clobbers count as writes)."""
    code, cls = op.opcode, op.opcode & CLASS_MASK
    d, s = op.dst, op.src
    x = code & SRC_X
    if cls in (Class.ALU, Class.ALU64):
        alu = code & OP_MASK
        if alu == MOV_OP:
            return (d,), ((s,) if x else ())
        return (d,), ((d, s) if x and alu not in (NEG_OP, END_OP) else (d,))
    if cls in (Class.JMP, Class.JMP32):
        if code == CALL:
            return CALLER_SAVED, tuple(range(1, op.nargs + 1))
        if code == CALLX:
            return CALLER_SAVED, (d, *range(1, op.nargs + 1))
        if code == EXIT:
            return (), (0,)
        if code in (JA, GOTOL, JCOND):  # JCOND: may_goto
            return (), ()
        return (), ((d, s) if x else (d,))
    if code == LD_IMM64:
        return (d,), ()
    if cls == Class.LD:  # legacy packet loads: ctx in r6, result in r0
        return CALLER_SAVED, ((6, s) if code & MODE_MASK == Mode.IND else (6,))
    if cls == Class.LDX:
        return (d,), (s,)
    if cls == Class.ST:
        return (), (d,)
    # STX
    if code & MODE_MASK != Mode.ATOMIC:
        return (), (d, s)
    if op.imm == AtomicOp.LOAD_ACQ:
        return (d,), (s,)
    if op.imm == AtomicOp.CMPXCHG:
        return (0,), (d, s, 0)
    if op.imm & FETCH:  # fetch forms and xchg write the old value into src
        return (s,), (d, s)
    return (), (d, s)
