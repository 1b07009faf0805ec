"""The eBPF instruction set (v1-v4): opcodes, registers and the Instruction value.

An :class:`Instruction` is an immutable value: opcode, registers, offset and
immediate (64-bit for ``ld_imm64``), plus metadata that never affects its
encoding (a label naming it, a symbolic reference it targets, the source
location that produced it).  Constructors read like the ISA, in the style of
cilium/ebpf's ``asm`` package::

    Mov.imm(R0, 0)                  # r0 = 0
    Add.reg32(R1, R2)               # w1 += w2
    JEq.imm(R1, 0, "out")           # if r1 == 0 goto out
    load_mem(R0, R1, 8, Size.DW)    # r0 = *(u64 *)(r1 + 8)
    call(1)                         # call bpf_map_lookup_elem

:func:`encode` and :func:`decode` are pure functions between instruction
lists and bytecode, in either byte order.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field, replace
from enum import EnumMeta, IntEnum
from typing import Iterable, Union

from .errors import BPFError

__all__ = [
    "R0",
    "R1",
    "R2",
    "R3",
    "R4",
    "R5",
    "R6",
    "R7",
    "R8",
    "R9",
    "R10",
    "RFP",
    "Add",
    "AluOp",
    "And",
    "Arsh",
    "AtomicOp",
    "Call",
    "Class",
    "DecodeError",
    "Div",
    "Exit",
    "Instruction",
    "JCond",
    "JEq",
    "JGe",
    "JGt",
    "JLe",
    "JLt",
    "JNe",
    "JSGe",
    "JSGt",
    "JSLe",
    "JSLt",
    "JSet",
    "Ja",
    "JumpOp",
    "Lsh",
    "Mod",
    "Mode",
    "Mov",
    "MovSX8",
    "MovSX16",
    "MovSX32",
    "Mul",
    "Neg",
    "OpCode",
    "Or",
    "PseudoCall",
    "PseudoLoad",
    "Reg",
    "Rsh",
    "SDiv",
    "SMod",
    "Size",
    "Source",
    "SourceLocation",
    "Sub",
    "Swap",
    "Xor",
    "addr_space_cast",
    "atomic",
    "bswap",
    "call",
    "call_kfunc",
    "callx",
    "decode",
    "encode",
    "exit_",
    "gotol",
    "gotox",
    "ja",
    "ld_abs",
    "ld_imm64",
    "ld_ind",
    "ld_map_fd",
    "ld_map_value",
    "load_acquire",
    "load_mem",
    "load_memsx",
    "may_goto",
    "movsx",
    "neg",
    "store_imm",
    "store_mem",
    "store_release",
    "to_be",
    "to_le",
]


class Reg(IntEnum):
    """The eleven BPF registers; r10 is the read-only frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = Reg
RFP = Reg.R10


class Class(IntEnum):
    """Instruction class: the low three bits of the opcode."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


class Size(IntEnum):
    """Access size of loads and stores (bits 3-4 of the opcode)."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def nbytes(self) -> int:
        return _SIZE_BYTES[self]

    @property
    def ctype(self) -> str:
        """The C type LLVM and the kernel print for this size (``u32``)."""
        return f"u{8 * _SIZE_BYTES[self]}"

    @classmethod
    def of(cls, nbytes: int) -> Size:
        """The size whose width is *nbytes* (1, 2, 4 or 8)."""
        for size, n in _SIZE_BYTES.items():
            if n == nbytes:
                return size
        raise ValueError(f"no BPF access size of {nbytes} bytes")


_SIZE_BYTES = {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}


class Mode(IntEnum):
    """Addressing mode of LD/LDX/ST/STX (bits 5-7 of the opcode)."""

    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0




class Source(IntEnum):
    """Operand source bit of ALU and jump opcodes: the immediate (K) or src register (X).

    For byte swaps (``AluOp.SWAP``) it selects the order: K to little endian, X to big.
    """

    K = 0x00
    X = 0x08


#: source bit: operand is the immediate (K) or the src register (X)
SRC_K = int(Source.K)
SRC_X = int(Source.X)


class _ListedEnum(EnumMeta):
    """Iteration lists the members a class marks as listed (``_listed``); ``every()`` lists all.

    ``list(AluOp)`` and ``list(JumpOp)`` have always been the two-operand
    operations, and callers build instructions from them with ``imm``/``reg``.
    """

    def __iter__(cls):
        return (m for m in super().__iter__() if m._listed)

    def __len__(cls) -> int:
        return sum(1 for _ in cls)

    def every(cls) -> list:
        """Every member, the unlisted ones included."""
        return list(super().__iter__())


class AluOp(IntEnum, metaclass=_ListedEnum):
    """ALU operations: opcode bits 4-7, and in bits 8-15 the ``off`` that extends them.

    As in cilium/ebpf's asm, the v4 operations told apart by ``off`` are
    members of their own: ``SDIV`` is ``DIV`` with off 1, ``MOVSX8`` is ``MOV``
    with off 8.  ``NEG`` and ``SWAP`` (byte swaps) are members too.  Iterating
    lists the binary operations (``dst op= src``, mov included) only;
    ``AluOp.every()`` lists all.
    """

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    SDIV = 0x130
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    SMOD = 0x190
    XOR = 0xA0
    MOV = 0xB0
    MOVSX8 = 0x8B0
    MOVSX16 = 0x10B0
    MOVSX32 = 0x20B0
    ARSH = 0xC0
    SWAP = 0xD0

    @property
    def code(self) -> int:
        """The opcode bits (bits 4-7)."""
        return self & 0xF0

    @property
    def off(self) -> int:
        """The ``off`` field this operation needs (its extension bits)."""
        return self >> 8

    @property
    def is_binary(self) -> bool:
        """``dst op= src/imm`` (mov included); false for neg, swap and sign-extending moves."""
        return self.name not in ("NEG", "SWAP", "MOVSX8", "MOVSX16", "MOVSX32")

    @property
    def _listed(self) -> bool:
        return self.is_binary

    @property
    def symbol(self) -> str:
        """The LLVM operator of a binary operation (``+=``)."""
        return _ALU_SYMBOLS[self]

    def imm(self, dst: Operand, value: int) -> Instruction:
        """64-bit ``dst op= value``."""
        return Instruction(Class.ALU64 | self.code, dst, 0, self.off, _s32(value), source=_caller())

    def reg(self, dst: Operand, src: Operand) -> Instruction:
        """64-bit ``dst op= src``."""
        return Instruction(Class.ALU64 | self.code | SRC_X, dst, src, self.off, source=_caller())

    def imm32(self, dst: Operand, value: int) -> Instruction:
        """32-bit ``wdst op= value`` (upper half of dst zeroed)."""
        return Instruction(Class.ALU | self.code, dst, 0, self.off, _s32(value), source=_caller())

    def reg32(self, dst: Operand, src: Operand) -> Instruction:
        """32-bit ``wdst op= wsrc``."""
        return Instruction(Class.ALU | self.code | SRC_X, dst, src, self.off, source=_caller())


_ALU_SYMBOLS = {
    AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.SDIV: "s/=",
    AluOp.OR: "|=", AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.MOD: "%=",
    AluOp.SMOD: "s%=", AluOp.XOR: "^=", AluOp.MOV: "=", AluOp.ARSH: "s>>=",
}


class JumpOp(IntEnum, metaclass=_ListedEnum):
    """Jump-class operations (opcode bits 4-7): the conditions, and ja, call, exit, jcond.

    Iterating lists the conditions only; ``JumpOp.every()`` lists all.
    """

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0

    @property
    def code(self) -> int:
        return int(self)

    @property
    def is_conditional(self) -> bool:
        """A comparison (``if dst <op> src goto``)."""
        return self.name not in ("JA", "CALL", "EXIT", "JCOND")

    @property
    def _listed(self) -> bool:
        return self.is_conditional

    @property
    def symbol(self) -> str:
        """The LLVM operator of a condition (``s>=``)."""
        return _JUMP_SYMBOLS[self][0]

    @property
    def inverse(self) -> JumpOp | None:
        """The condition that is true exactly when this one is false (None for jset)."""
        name = _JUMP_SYMBOLS[self][1]
        return JumpOp[name] if name else None

    def imm(self, dst: Operand, value: int, target: int | str) -> Instruction:
        """``if dst <op> value goto target`` on 64 bits; target is a label or offset."""
        return _jump(Class.JMP | self.code, dst, 0, _s32(value), target)

    def reg(self, dst: Operand, src: Operand, target: int | str) -> Instruction:
        return _jump(Class.JMP | self.code | SRC_X, dst, src, 0, target)

    def imm32(self, dst: Operand, value: int, target: int | str) -> Instruction:
        """``if wdst <op> value goto target`` on the low 32 bits."""
        return _jump(Class.JMP32 | self.code, dst, 0, _s32(value), target)

    def reg32(self, dst: Operand, src: Operand, target: int | str) -> Instruction:
        return _jump(Class.JMP32 | self.code | SRC_X, dst, src, 0, target)


#: condition -> (LLVM operator, name of the inverse condition)
_JUMP_SYMBOLS = {
    JumpOp.JEQ: ("==", "JNE"), JumpOp.JGT: (">", "JLE"), JumpOp.JGE: (">=", "JLT"),
    JumpOp.JSET: ("&", None), JumpOp.JNE: ("!=", "JEQ"), JumpOp.JSGT: ("s>", "JSLE"),
    JumpOp.JSGE: ("s>=", "JSLT"), JumpOp.JLT: ("<", "JGE"), JumpOp.JLE: ("<=", "JGT"),
    JumpOp.JSLT: ("s<", "JSGE"), JumpOp.JSLE: ("s<=", "JSGT"),
}
_ALU_CLASSES = (Class.ALU, Class.ALU64)
_JUMP_CLASSES = (Class.JMP, Class.JMP32)


class OpCode(int):
    """An opcode byte with its fields by name, like cilium/ebpf's ``asm.OpCode``.

    >>> OpCode.alu(AluOp.MOV, Source.X)
    OpCode(ALU64|MOV|X)
    >>> OpCode(0x61).size
    <Size.W: 0>
    """

    __slots__ = ()

    def __new__(cls, value: int) -> OpCode:
        if not 0 <= value <= 0xFF:
            raise ValueError(f"opcode {value} out of range")
        return super().__new__(cls, value)

    @classmethod
    def alu(cls, op: AluOp, source: Source = Source.K, *, alu32: bool = False) -> OpCode:
        """The opcode of ALU operation *op* (its ``off`` extension goes in the instruction)."""
        return cls((Class.ALU if alu32 else Class.ALU64) | op.code | source)

    @classmethod
    def jump(cls, op: JumpOp, source: Source = Source.K, *, jmp32: bool = False) -> OpCode:
        return cls((Class.JMP32 if jmp32 else Class.JMP) | op | source)

    @classmethod
    def mem(cls, klass: Class, mode: Mode, size: Size) -> OpCode:
        """A load or store opcode (LD, LDX, ST, STX)."""
        return cls(klass | mode | size)

    @property
    def cls(self) -> Class:
        return Class(self & 0x07)

    @property
    def alu_op(self) -> AluOp | None:
        """The ALU operation without extension bits (SDIV reads as DIV: see Instruction.alu_op)."""
        return AluOp(self & 0xF0) if self.cls in _ALU_CLASSES and self & 0xF0 <= 0xD0 else None

    @property
    def jump_op(self) -> JumpOp | None:
        return JumpOp(self & 0xF0) if self.cls in _JUMP_CLASSES and self & 0xF0 <= 0xE0 else None

    @property
    def source(self) -> Source | None:
        return Source(self & 0x08) if self.cls in _ALU_CLASSES + _JUMP_CLASSES else None

    @property
    def size(self) -> Size | None:
        return Size(self & 0x18) if self.cls not in _ALU_CLASSES + _JUMP_CLASSES else None

    @property
    def mode(self) -> Mode | None:
        return Mode(self & 0xE0) if self.size is not None and self & 0xE0 in _MODES else None

    def __str__(self) -> str:
        """Fields by name: ``ALU64|MOV|X``, ``LDX|MEM|W``."""
        if self.alu_op is not None or self.jump_op is not None:
            op = self.alu_op if self.alu_op is not None else self.jump_op
            return f"{self.cls.name}|{op.name}|{self.source.name}"
        mode = self.mode.name if self.mode is not None else f"0x{self & 0xE0:02x}"
        return f"{self.cls.name}|{mode}|{self.size.name}"

    def __repr__(self) -> str:
        return f"OpCode({self})"


class PseudoLoad(IntEnum):
    """``src`` of ``ld_imm64``: how the kernel interprets the 64-bit immediate."""

    NONE = 0
    MAP_FD = 1
    MAP_VALUE = 2
    BTF_ID = 3
    FUNC = 4
    MAP_IDX = 5
    MAP_IDX_VALUE = 6


class PseudoCall(IntEnum):
    """``src`` of ``call``: helper id, bpf-to-bpf call or kernel function."""

    HELPER = 0
    CALL = 1
    KFUNC = 2


@dataclass(frozen=True)
class SourceLocation:
    """Where an instruction came from: an assembler line or an eDSL call site."""

    file: str
    line: int
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" + (f":{self.col}" if self.col else "")


class DecodeError(BPFError):
    """Bytes that are not a valid instruction; names the byte offset."""

    exit_code = 2

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"byte offset {offset}: {message}")
        self.offset = offset


@dataclass(frozen=True)
class Instruction:
    """One BPF instruction (``ld_imm64`` counts as one, occupying two slots).

    Equality and hashing cover the encoded fields only, so a decoded
    instruction equals the one that was encoded whatever its metadata.
    """

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    #: label naming this instruction (a jump or call target, or a function)
    symbol: str | None = field(default=None, compare=False)
    #: symbol this instruction refers to: a jump/call target label or a map name
    reference: str | None = field(default=None, compare=False)
    #: assembler line or eDSL call site that produced it
    source: SourceLocation | None = field(default=None, compare=False, repr=False)
    #: why this is a kernel-internal form (read from a kernel listing) that cannot be loaded
    internal: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("opcode", "dst", "src"):  # store OpCode and Reg members as plain ints
            if type(getattr(self, name)) is not int:
                object.__setattr__(self, name, int(getattr(self, name)))
        problem = _check_encodable(self) if self.internal else check(self)
        if problem:
            raise ValueError(f"invalid instruction (opcode 0x{self.opcode:02x}): {problem}")

    def __repr__(self) -> str:
        op = self.op
        alu = self.alu_op
        fields = [f"{op.cls.name}|{alu.name}|{op.source.name}" if alu is not None else str(op)]
        fields += [f"{name}={getattr(self, name)}" for name in ("dst", "src", "off", "imm")
                   if getattr(self, name)]
        fields += [f"{name}={getattr(self, name)!r}" for name in ("symbol", "reference")
                   if getattr(self, name) is not None]
        return f"Instruction({', '.join(fields)})"

    # -- opcode fields -----------------------------------------------------
    @property
    def op(self) -> OpCode:
        """The opcode, typed: fields by name."""
        return OpCode(self.opcode)

    @property
    def alu_op(self) -> AluOp | None:
        """The ALU operation, with the extension ``off`` selects (SDIV, MOVSX8); None if not ALU."""
        base = self.op.alu_op
        if base is None:
            return None
        if base in (AluOp.DIV, AluOp.MOD) or (base == AluOp.MOV and self.opcode & SRC_X):
            try:
                return AluOp(base | (self.off & 0xFF) << 8)
            except ValueError:
                return base
        return base

    @property
    def jump_op(self) -> JumpOp | None:
        return self.op.jump_op

    @property
    def cls(self) -> Class:
        return Class(self.opcode & 0x07)

    @property
    def size(self) -> Size:
        return Size(self.opcode & 0x18)

    @property
    def mode(self) -> Mode:
        return Mode(self.opcode & 0xE0)

    @property
    def is_ld_imm64(self) -> bool:
        return self.opcode == LD_IMM64

    @property
    def slots(self) -> int:
        """Number of 8-byte slots: 2 for ``ld_imm64``, else 1."""
        return 2 if self.opcode == LD_IMM64 else 1

    @property
    def is_jump(self) -> bool:
        """A jump whose target is a pc-relative offset (not call or exit)."""
        if self.opcode & 0x07 not in (Class.JMP, Class.JMP32):
            return False
        return self.opcode not in (CALL, CALLX, EXIT, GOTOX)

    @property
    def is_call(self) -> bool:
        return self.opcode == CALL

    @property
    def callx_register(self) -> int:
        """The register of ``callx``: dst, or imm in the encoding older LLVM emitted."""
        return self.dst or self.imm

    @property
    def jump_offset(self) -> int:
        """pc-relative target of a jump: ``imm`` for gotol, ``off`` otherwise."""
        return self.imm if self.opcode == GOTOL else self.off

    def with_jump_offset(self, offset: int) -> Instruction:
        """The same jump aimed at *offset* slots after the next instruction."""
        if self.opcode == GOTOL:
            return replace(self, imm=offset)
        return replace(self, off=offset)


Operand = Union[int, "Reg"]

# -- fixed opcodes -----------------------------------------------------------
LD_IMM64 = int(OpCode.mem(Class.LD, Mode.IMM, Size.DW))
CALL = int(OpCode.jump(JumpOp.CALL))
CALLX = int(OpCode.jump(JumpOp.CALL, Source.X))
EXIT = int(OpCode.jump(JumpOp.EXIT))
JA = int(OpCode.jump(JumpOp.JA))
GOTOL = int(OpCode.jump(JumpOp.JA, jmp32=True))
GOTOX = int(OpCode.jump(JumpOp.JA, Source.X))
JCOND = int(OpCode.jump(JumpOp.JCOND))
MAY_GOTO = 0  # src of JCOND
END_OP = AluOp.SWAP.code
NEG_OP = AluOp.NEG.code
MOV_OP = AluOp.MOV.code
#: off of ``mov`` that marks addr_space_cast (arena pointers)
ADDR_SPACE_CAST = 1


def _caller() -> SourceLocation | None:
    """Location of the user code that called a constructor (skips this module)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    if frame is None:
        return None
    return SourceLocation(frame.f_code.co_filename, frame.f_lineno)


def _s32(value: int) -> int:
    """Accept a 32-bit immediate given signed or unsigned; return it signed."""
    value = int(value)
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(f"immediate {value} does not fit in 32 bits")
    return value - (1 << 32) if value >= (1 << 31) else value


def _s64(value: int) -> int:
    value = int(value)
    if not -(1 << 63) <= value < (1 << 64):
        raise ValueError(f"immediate {value} does not fit in 64 bits")
    return value - (1 << 64) if value >= (1 << 63) else value


# -- ALU ---------------------------------------------------------------------
#: ALU operations by (opcode bits, off)
ALU_BY_CODE = {(op.code, op.off): op for op in AluOp.every()}
Add, Sub, Mul, Div, SDiv = AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.DIV, AluOp.SDIV
Or, And, Lsh, Rsh, Mod = AluOp.OR, AluOp.AND, AluOp.LSH, AluOp.RSH, AluOp.MOD
SMod, Xor, Mov, Arsh = AluOp.SMOD, AluOp.XOR, AluOp.MOV, AluOp.ARSH
Neg, Swap, MovSX8, MovSX16, MovSX32 = AluOp.NEG, AluOp.SWAP, AluOp.MOVSX8, AluOp.MOVSX16, AluOp.MOVSX32


def neg(dst: Operand, *, alu32: bool = False) -> Instruction:
    """``dst = -dst``."""
    return Instruction((Class.ALU if alu32 else Class.ALU64) | NEG_OP, dst, source=_caller())


def movsx(dst: Operand, src: Operand, bits: int, *, alu32: bool = False) -> Instruction:
    """Sign-extending move ``dst = (s<bits>)src`` (v4); bits is 8, 16 or 32."""
    cls = Class.ALU if alu32 else Class.ALU64
    return Instruction(cls | MOV_OP | SRC_X, dst, src, bits, source=_caller())


def addr_space_cast(dst: Operand, src: Operand, dst_as: int, src_as: int) -> Instruction:
    """``dst = addr_space_cast(src, dst_as, src_as)`` for arena pointers."""
    imm = _s32((dst_as << 16) | src_as)
    return Instruction(Class.ALU64 | MOV_OP | SRC_X, dst, src, ADDR_SPACE_CAST, imm, source=_caller())


def to_be(dst: Operand, bits: int) -> Instruction:
    """Convert the low *bits* of dst from host order to big endian."""
    return Instruction(Class.ALU | END_OP | SRC_X, dst, 0, 0, bits, source=_caller())


def to_le(dst: Operand, bits: int) -> Instruction:
    """Convert the low *bits* of dst from host order to little endian."""
    return Instruction(Class.ALU | END_OP, dst, 0, 0, bits, source=_caller())


def bswap(dst: Operand, bits: int) -> Instruction:
    """Unconditional byte swap of the low *bits* of dst (v4)."""
    return Instruction(Class.ALU64 | END_OP, dst, 0, 0, bits, source=_caller())


# -- jumps -------------------------------------------------------------------
#: conditions by opcode bits
JUMP_BY_CODE = {op.code: op for op in JumpOp if op.is_conditional}
JEq, JNe, JGt, JGe, JLt, JLe = JumpOp.JEQ, JumpOp.JNE, JumpOp.JGT, JumpOp.JGE, JumpOp.JLT, JumpOp.JLE
JSGt, JSGe, JSLt, JSLe, JSet = JumpOp.JSGT, JumpOp.JSGE, JumpOp.JSLT, JumpOp.JSLE, JumpOp.JSET
Ja, Call, Exit, JCond = JumpOp.JA, JumpOp.CALL, JumpOp.EXIT, JumpOp.JCOND


def _jump(opcode: int, dst: int, src: int, imm: int, target: int | str, *, long: bool = False) -> Instruction:
    ref = target if isinstance(target, str) else None
    offset = 0 if ref is not None else int(target)
    if long:
        return Instruction(opcode, dst, src, 0, offset, reference=ref, source=_caller())
    return Instruction(opcode, dst, src, offset, imm, reference=ref, source=_caller())


def ja(target: int | str) -> Instruction:
    """``goto target`` (16-bit offset)."""
    return _jump(JA, 0, 0, 0, target)


def gotol(target: int | str) -> Instruction:
    """``gotol target`` (32-bit offset in imm, v4)."""
    return _jump(GOTOL, 0, 0, 0, target, long=True)


def gotox(reg: Operand) -> Instruction:
    """Indirect jump to the instruction address held in *reg*."""
    return Instruction(GOTOX, reg, source=_caller())


def may_goto(target: int | str) -> Instruction:
    """``may_goto target``: a jump the kernel takes once a loop budget is spent."""
    return _jump(JCOND, 0, MAY_GOTO, 0, target)


def call(target: int | str) -> Instruction:
    """Call a helper by id (int) or a bpf-to-bpf function by label (str)."""
    if isinstance(target, str):
        return Instruction(CALL, 0, PseudoCall.CALL, 0, -1, reference=target, source=_caller())
    return Instruction(CALL, 0, PseudoCall.HELPER, 0, _s32(target), source=_caller())


def call_kfunc(btf_id: int, btf_fd_index: int = 0) -> Instruction:
    """Call a kernel function by BTF id (module BTF given by fd_array index)."""
    return Instruction(CALL, 0, PseudoCall.KFUNC, btf_fd_index, _s32(btf_id), source=_caller())


def callx(reg: Operand) -> Instruction:
    """Indirect call through a register (LLVM encodes the register in dst)."""
    return Instruction(CALLX, reg, source=_caller())


def exit_() -> Instruction:
    """Return r0 to the caller."""
    return Instruction(EXIT, source=_caller())


# -- loads and stores ----------------------------------------------------------
def ld_imm64(dst: Operand, value: int = 0, src: PseudoLoad = PseudoLoad.NONE,
             *, reference: str | None = None) -> Instruction:
    """``dst = value ll`` (two slots); *src* selects a pseudo form."""
    return Instruction(LD_IMM64, dst, src, 0, _s64(value), reference=reference, source=_caller())


def ld_map_fd(dst: Operand, map_: int | str) -> Instruction:
    """Load a map pointer by fd (int) or by map name resolved at assembly (str)."""
    if isinstance(map_, str):
        return Instruction(LD_IMM64, dst, PseudoLoad.MAP_FD, reference=map_, source=_caller())
    return Instruction(LD_IMM64, dst, PseudoLoad.MAP_FD, 0, int(map_), source=_caller())


def ld_map_value(dst: Operand, map_: int | str, offset: int = 0) -> Instruction:
    """Load the address of *offset* into an array map's value (direct value access)."""
    fd, ref = (0, map_) if isinstance(map_, str) else (int(map_), None)
    imm = (int(offset) << 32) | fd
    return Instruction(LD_IMM64, dst, PseudoLoad.MAP_VALUE, 0, _s64(imm), reference=ref, source=_caller())


def ld_abs(offset: int, size: Size) -> Instruction:
    """Legacy packet load ``r0 = *(size *)skb[offset]`` (socket filters)."""
    return Instruction(Class.LD | Mode.ABS | size, 0, 0, 0, _s32(offset), source=_caller())


def ld_ind(src: Operand, offset: int, size: Size) -> Instruction:
    """Legacy packet load ``r0 = *(size *)skb[src + offset]``."""
    return Instruction(Class.LD | Mode.IND | size, 0, src, 0, _s32(offset), source=_caller())


def load_mem(dst: Operand, src: Operand, off: int, size: Size) -> Instruction:
    """``dst = *(size *)(src + off)``, zero-extended."""
    return Instruction(Class.LDX | Mode.MEM | size, dst, src, off, source=_caller())


def load_memsx(dst: Operand, src: Operand, off: int, size: Size) -> Instruction:
    """``dst = *(s<size> *)(src + off)``, sign-extended (v4)."""
    return Instruction(Class.LDX | Mode.MEMSX | size, dst, src, off, source=_caller())


def store_mem(dst: Operand, off: int, src: Operand, size: Size) -> Instruction:
    """``*(size *)(dst + off) = src``."""
    return Instruction(Class.STX | Mode.MEM | size, dst, src, off, source=_caller())


def store_imm(dst: Operand, off: int, value: int, size: Size) -> Instruction:
    """``*(size *)(dst + off) = value``."""
    return Instruction(Class.ST | Mode.MEM | size, dst, 0, off, _s32(value), source=_caller())


class AtomicOp(IntEnum):
    """``imm`` of BPF_ATOMIC instructions."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xA1
    XCHG = 0xE1
    CMPXCHG = 0xF1
    LOAD_ACQ = 0x100
    STORE_REL = 0x110

    @property
    def fetches(self) -> bool:
        return bool(self & 0x01)


def atomic(op: AtomicOp, dst: Operand, off: int, src: Operand, size: Size = Size.DW) -> Instruction:
    """Atomic read-modify-write of ``*(size *)(dst + off)`` with src (W or DW)."""
    return Instruction(Class.STX | Mode.ATOMIC | size, dst, src, off, int(op), source=_caller())


def load_acquire(dst: Operand, src: Operand, off: int, size: Size = Size.DW) -> Instruction:
    """``dst = load_acquire((size *)(src + off))``."""
    return Instruction(Class.STX | Mode.ATOMIC | size, dst, src, off, AtomicOp.LOAD_ACQ, source=_caller())


def store_release(dst: Operand, off: int, src: Operand, size: Size = Size.DW) -> Instruction:
    """``store_release((size *)(dst + off), src)``."""
    return Instruction(Class.STX | Mode.ATOMIC | size, dst, src, off, AtomicOp.STORE_REL, source=_caller())


# -- validity ------------------------------------------------------------------
# Plain ints: the checks run once per decoded instruction.
_ALU64, _JMP32, _DW, _MEM, _ATOMIC = int(Class.ALU64), int(Class.JMP32), int(Size.DW), int(Mode.MEM), int(Mode.ATOMIC)
_ABS, _IND, _MEMSX = int(Mode.ABS), int(Mode.IND), int(Mode.MEMSX)
_MODES = frozenset(int(m) for m in Mode)
_LOAD_ACQ, _STORE_REL = int(AtomicOp.LOAD_ACQ), int(AtomicOp.STORE_REL)
_ATOMIC_RMW = frozenset(int(op) for op in AtomicOp if op < AtomicOp.LOAD_ACQ)
_ALU_OFFS = frozenset((op.code, op.off) for op in AluOp if op.is_binary)
_JUMP_CODES = frozenset(op.code for op in JumpOp if op.is_conditional)
_ENDIAN_IMMS = (16, 32, 64)


def check(insn: Instruction) -> str | None:
    """Why *insn* is not a valid instruction, or None if it is (see :func:`check_fields`)."""
    return check_fields(insn.opcode, insn.dst, insn.src, insn.off, insn.imm)


def check_fields(opcode: int, dst: int, src: int, off: int, imm: int) -> str | None:
    """Why these fields are not a valid instruction, or None if they are.

    Valid means what the kernel's syntax checks accept: a known opcode,
    registers r0-r10 and every field the opcode does not use set to zero.
    Semantic rules (register liveness, shift ranges, jump targets) are left
    to the assembler and the verifier.
    """
    if not 0 <= opcode <= 0xFF:
        return f"opcode {opcode} out of range"
    if not -0x8000 <= off <= 0x7FFF:
        return f"offset {off} does not fit in 16 bits"
    if opcode == LD_IMM64:
        if not -(1 << 63) <= imm < (1 << 63):
            return "64-bit immediate out of range"
    elif not -(1 << 31) <= imm < (1 << 31):
        return f"immediate {imm} does not fit in 32 bits"
    return _check_shape(opcode, dst, src, off, imm)


def _check_encodable(insn: Instruction) -> str | None:
    """Why a kernel-internal instruction does not even fit the encoding's fields."""
    if not (0 <= insn.dst <= 15 and 0 <= insn.src <= 15):
        return "register does not fit in 4 bits"
    if not 0 <= insn.opcode <= 0xFF:
        return f"opcode {insn.opcode} out of range"
    if not -0x8000 <= insn.off <= 0x7FFF:
        return f"offset {insn.off} does not fit in 16 bits"
    bits = 63 if insn.opcode == LD_IMM64 else 31
    return None if -(1 << bits) <= insn.imm < (1 << bits) else "immediate out of range"


def _check_shape(opcode: int, dst: int, src: int, off: int, imm: int) -> str | None:
    """check_fields for values already in their encoded ranges (the decoder's case)."""
    if dst > 10 or src > 10 or dst < 0 or src < 0:
        return f"register out of range (dst r{dst}, src r{src}; r0-r10 exist)"
    return _CHECKS[opcode & 0x07](opcode, dst, src, off, imm)


def _check_alu(opcode: int, dst: int, src: int, off: int, imm: int) -> str | None:
    op, x, alu64 = opcode & 0xF0, opcode & SRC_X, opcode & 0x07 == _ALU64
    if op == END_OP:
        if alu64 and x:
            return "bswap has no register form"
        return None if not (src or off) and imm in _ENDIAN_IMMS else "bad byte-swap fields"
    if op == NEG_OP:
        return None if not (x or src or off or imm) else "neg uses reserved fields"
    if op == MOV_OP and x:
        if alu64 and off == ADDR_SPACE_CAST:
            return None
        allowed = (0, 8, 16, 32) if alu64 else (0, 8, 16)
        return None if off in allowed and not imm else "bad mov fields"
    if (op, off) not in _ALU_OFFS:
        return f"unknown ALU operation 0x{op:02x} off {off}"
    if x:
        return "register ALU form uses the immediate" if imm else None
    return "immediate ALU form uses src" if src else None


def _check_jmp(opcode: int, dst: int, src: int, off: int, imm: int) -> str | None:
    op, x = opcode & 0xF0, opcode & SRC_X
    if op in _JUMP_CODES:
        if x:
            return "register jump form uses the immediate" if imm else None
        return "immediate jump form uses src" if src else None
    jmp32 = opcode & 0x07 == _JMP32
    if op == 0x00:  # ja / gotol / gotox
        if opcode == GOTOX:
            return None if not (src or off or imm) else "gotox uses reserved fields"
        if x or dst or src:
            return "ja uses reserved fields"
        if jmp32:
            return "gotol uses the offset field" if off else None
        return "ja uses the immediate" if imm else None
    if op in (0x80, 0x90, 0xE0) and not jmp32:
        if opcode == CALL:
            if dst or src > 2:  # PseudoCall.KFUNC
                return "bad call fields"
            return "call offset is only for kfuncs" if off and src != 2 else None
        if opcode == CALLX:  # register in dst (LLVM 18+) or, as older LLVM wrote it, in imm
            if src or off or not 0 <= imm <= 10 or (dst and imm):
                return "callx uses reserved fields"
            return None
        if opcode == EXIT:
            return "exit uses reserved fields" if (dst or src or off or imm) else None
        if opcode == JCOND:
            return "may_goto uses reserved fields" if (dst or src != MAY_GOTO or imm) else None
    return f"unknown jump opcode 0x{opcode:02x}"


def _check_ld(opcode: int, dst: int, src: int, off: int, imm: int) -> str | None:
    if opcode == LD_IMM64:
        if src > PseudoLoad.MAP_IDX_VALUE:
            return f"unknown ld_imm64 pseudo source {src}"
        return "reserved offset field is not zero" if off else None
    mode = opcode & 0xE0
    if mode not in (_ABS, _IND) or opcode & 0x18 == _DW:
        return f"unknown LD opcode 0x{opcode:02x}"
    if dst or off or (mode == _ABS and src):
        return "legacy packet load uses reserved fields"
    return None


def _check_ldx(opcode: int, dst: int, src: int, off: int, imm: int) -> str | None:
    mode = opcode & 0xE0
    if mode != _MEM and (mode != _MEMSX or opcode & 0x18 == _DW):
        return f"unknown LDX opcode 0x{opcode:02x}"
    return "load uses the immediate" if imm else None


def _check_st(opcode: int, dst: int, src: int, off: int, imm: int) -> str | None:
    if opcode & 0xE0 != _MEM:
        return f"unknown ST opcode 0x{opcode:02x}"
    return "store-immediate uses src" if src else None


def _check_stx(opcode: int, dst: int, src: int, off: int, imm: int) -> str | None:
    mode = opcode & 0xE0
    if mode == _MEM:
        return "store uses the immediate" if imm else None
    if mode != _ATOMIC:
        return f"unknown STX opcode 0x{opcode:02x}"
    if imm in (_LOAD_ACQ, _STORE_REL):
        return None
    if imm not in _ATOMIC_RMW:
        return f"unknown atomic operation 0x{imm:x}"
    return None if opcode & 0x18 in (0, _DW) else "atomic read-modify-write is W or DW only"


#: validator by instruction class (the opcode's low three bits)
_CHECKS = (_check_ld, _check_ldx, _check_st, _check_stx, _check_alu, _check_jmp, _check_jmp, _check_alu)


# -- encoding ------------------------------------------------------------------
_SLOT = {"little": struct.Struct("<BBhi"), "big": struct.Struct(">BBhi")}


def _regs(dst: int, src: int, byteorder: str) -> int:
    return (src << 4 | dst) if byteorder == "little" else (dst << 4 | src)


def encode(insns: Iterable[Instruction], byteorder: str = "little") -> bytes:
    """Bytecode of *insns*: 8 bytes a slot, 16 for ``ld_imm64``.

    Encodes the fields as they are: symbolic references are resolved by
    :func:`pybpfasm.asm.assemble`, which is the path for programs with labels.
    """
    slot = _SLOT[byteorder].pack
    out = bytearray()
    for insn in insns:
        regs = _regs(insn.dst, insn.src, byteorder)
        if insn.opcode == LD_IMM64:
            imm = insn.imm & 0xFFFF_FFFF_FFFF_FFFF
            out += slot(insn.opcode, regs, 0, _signed32(imm & 0xFFFF_FFFF))
            out += slot(0, 0, 0, _signed32(imm >> 32))
        else:
            out += slot(insn.opcode, regs, insn.off, insn.imm)
    return bytes(out)


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & 0x8000_0000 else value


def decode(data: bytes | bytearray | memoryview, byteorder: str = "little") -> list[Instruction]:
    """Instructions of *data*; raises :class:`DecodeError` naming the bad byte offset."""
    if len(data) % 8:
        raise DecodeError(len(data) - len(data) % 8, f"length {len(data)} is not a multiple of 8")
    slots = list(_SLOT[byteorder].iter_unpack(data))
    little = byteorder == "little"
    checks, new, out = _CHECKS, object.__new__, []
    append = out.append
    seen: dict[tuple[int, int, int, int], Instruction] = {}  # values: equal slots share one
    i, n = 0, len(slots)
    while i < n:
        slot = slots[i]
        if slot in seen and slot[0] != LD_IMM64:
            append(seen[slot])
            i += 1
            continue
        opcode, regs, off, imm = slot
        dst, src = (regs & 0xF, regs >> 4) if little else (regs >> 4, regs & 0xF)
        if opcode == LD_IMM64:
            if i + 1 == n:
                raise DecodeError(8 * i, "ld_imm64 is missing its second slot")
            op2, regs2, off2, hi = slots[i + 1]
            if op2 or regs2 or off2:
                raise DecodeError(8 * i + 8, "second slot of ld_imm64 has non-zero reserved fields")
            imm = (hi << 32) | (imm & 0xFFFF_FFFF)
        if dst > 10 or src > 10:
            problem = f"register out of range (dst r{dst}, src r{src}; r0-r10 exist)"
        else:
            problem = checks[opcode & 0x07](opcode, dst, src, off, imm)
        if problem:
            raise DecodeError(8 * i, f"{problem} (opcode 0x{opcode:02x})")
        insn = new(Instruction)
        insn.__dict__.update(opcode=opcode, dst=dst, src=src, off=off, imm=imm,
                             symbol=None, reference=None, source=None, internal=None)
        append(insn)
        if opcode == LD_IMM64:
            i += 2
        else:
            seen[slot] = insn
            i += 1
    return out
