"""The eDSL's intermediate form: instructions over virtual registers.

An :class:`Op` is an instruction whose ``dst``/``src`` may be a :class:`VReg`
(allocated later) or a physical register number (r0-r5 around calls, r10).
:class:`Label` marks a jump target.  The register allocator
(:mod:`.regalloc`) reads :func:`defs_uses` to compute liveness.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Union

from ..isa import (
    CALL,
    CALLX,
    EXIT,
    GOTOL,
    JA,
    JCOND,
    LD_IMM64,
    AluOp,
    AtomicOp,
    Class,
    Instruction,
    Mode,
    OpCode,
    SourceLocation,
    Source,
)

#: registers a helper call clobbers; r0 also receives the result
CALLER_SAVED = (0, 1, 2, 3, 4, 5)
FP = 10
#: the flag that makes an atomic operation return the old value
FETCH = AtomicOp.FETCH_ADD ^ AtomicOp.ADD
#: ``dst = src``, the register copy the allocator coalesces
MOV64_X = int(OpCode.alu(AluOp.MOV, Source.X))


@functools.lru_cache(maxsize=None)
def opcode_fields(opcode: int) -> tuple[Class, AluOp | None, bool, Mode | None]:
    """The class, ALU operation, register-source bit and memory mode of *opcode*."""
    code = OpCode(opcode)
    return code.cls, code.alu_op, code.source == Source.X, code.mode


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

    def __post_init__(self) -> None:
        self.opcode = int(self.opcode)  # an OpCode is an int; listings hold plain ones

    def lower(self, dst: int, src: int, symbol: str | None) -> Instruction:
        return Instruction(self.opcode, dst, src, self.off, self.imm, symbol=symbol,
                           reference=self.reference, source=self.source)

    @property
    def is_branch(self) -> bool:
        jumps = opcode_fields(self.opcode)[0] in (Class.JMP, Class.JMP32)
        return jumps and self.opcode not in (CALL, CALLX, EXIT)

    @property
    def is_unconditional(self) -> bool:
        return self.opcode in (JA, GOTOL, EXIT)


@dataclass
class Label:
    name: str


Item = Union[Op, Label]


def defs_uses(op: Op) -> tuple[tuple[Operand, ...], tuple[Operand, ...]]:
    """Registers *op* writes and reads (call clobbers count as writes)."""
    code = op.opcode
    cls, alu, x, mode = opcode_fields(code)
    d, s = op.dst, op.src
    if alu is not None:
        if alu == AluOp.MOV:
            return (d,), ((s,) if x else ())
        return (d,), ((d, s) if x and alu not in (AluOp.NEG, AluOp.SWAP) else (d,))
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
        return CALLER_SAVED, ((6, s) if mode == Mode.IND else (6,))
    if cls == Class.LDX:
        return (d,), (s,)
    if cls == Class.ST:
        return (), (d,)
    # STX
    if mode != Mode.ATOMIC:
        return (), (d, s)
    if op.imm == AtomicOp.LOAD_ACQ:
        return (d,), (s,)
    if op.imm == AtomicOp.CMPXCHG:
        return (0,), (d, s, 0)
    if op.imm & FETCH:  # fetch forms and xchg write the old value into src
        return (s,), (d, s)
    return (), (d, s)
