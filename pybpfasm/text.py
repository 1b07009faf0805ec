"""The text syntax of BPF: parse and format, plus a ``dis``-like API.

Output is the LLVM assembler syntax (what clang's integrated assembler
accepts and llvm-objdump prints).  Input is that syntax or the kernel
verifier's printout (``0: (b7) r0 = 0``, ``if r1 > 0x3 goto pc+2``,
``call bpf_map_lookup_elem#1``, ``lock *(u64 *)(r1 +8) += r2``).

A few encodings have no LLVM spelling; they use the nearest kernel-style form:

==============================  =======================================
``call pc+5``                   bpf-to-bpf call by offset (kernel form)
``call kfunc#ID`` [``, OFF``]   kernel function call by BTF id
``r0 = *(u16 *)skb[r1 + 4]``    ld_ind with a non-zero immediate
``ld_pseudo r1, SRC, IMM, HI``  ld_imm64 pseudo load whose second slot is set
==============================  =======================================

Symbolic forms resolved by :mod:`pybpfasm.asm`: ``goto LABEL``, ``call LABEL``,
``r1 = NAME ll`` (a map or a function) and ``ld_pseudo r1, SRC, NAME[, HI]``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from typing import IO, Iterable, NamedTuple, Sequence

from . import isa
from .errors import BPFError
from .isa import (
    ADDR_SPACE_CAST,
    CALL,
    CALLX,
    END_OP,
    EXIT,
    GOTOL,
    GOTOX,
    JA,
    JCOND,
    LD_IMM64,
    MOV_OP,
    NEG_OP,
    SRC_X,
    AluOp,
    AtomicOp,
    Class,
    Instruction,
    JumpOp,
    Mode,
    PseudoCall,
    PseudoLoad,
    Size,
    SourceLocation,
)

__all__ = ["AsmSyntaxError", "dis", "disassemble", "format", "format_instruction",
           "format_program", "parse"]


class AsmSyntaxError(BPFError):
    """A syntax error, printed as ``file:line:col: message``."""

    exit_code = 2

    def __init__(self, file: str, line: int, col: int, message: str) -> None:
        super().__init__(f"{file}:{line}:{col}: {message}")
        self.file, self.line, self.col, self.message = file, line, col, message


# -- formatting ----------------------------------------------------------------
def _mem(reg: int, off: int) -> str:
    return f"(r{reg} {'-' if off < 0 else '+'} {abs(off)})"


def _target(insn: Instruction) -> str:
    return insn.reference if insn.reference else f"{insn.jump_offset:+d}"


def _fmt_alu(insn: Instruction) -> str:
    op, x, w = insn.opcode & 0xF0, insn.opcode & SRC_X, "w" if insn.cls == Class.ALU else "r"
    d, s = insn.dst, insn.src
    if op == END_OP:
        if insn.cls == Class.ALU64:
            return f"r{d} = bswap{insn.imm} r{d}"
        return f"r{d} = {'be' if x else 'le'}{insn.imm} r{d}"
    if op == NEG_OP:
        return f"{w}{d} = -{w}{d}"
    if op == MOV_OP and x and insn.off:
        if insn.off == ADDR_SPACE_CAST and insn.cls == Class.ALU64:
            imm = insn.imm & 0xFFFF_FFFF
            return f"r{d} = addr_space_cast(r{s}, {imm >> 16}, {imm & 0xFFFF})"
        return f"{w}{d} = (s{insn.off}){w}{s}"
    symbol = isa.ALU_BY_CODE[(op, insn.off)].symbol
    return f"{w}{d} {symbol} {w}{s}" if x else f"{w}{d} {symbol} {insn.imm}"


def _fmt_jmp(insn: Instruction) -> str:
    opcode = insn.opcode
    if opcode == EXIT:
        return "exit"
    if opcode == CALL:
        if insn.src == PseudoCall.HELPER:
            return f"call {insn.imm}"
        if insn.src == PseudoCall.CALL:
            return f"call {insn.reference}" if insn.reference else f"call pc{insn.imm:+d}"
        return f"call kfunc#{insn.imm}" + (f", {insn.off}" if insn.off else "")
    if opcode == CALLX:
        return f"callx r{insn.dst}"
    if opcode == GOTOX:
        return f"gotox r{insn.dst}"
    if opcode == JA:
        return f"goto {_target(insn)}"
    if opcode == GOTOL:
        return f"gotol {_target(insn)}"
    if opcode == JCOND:
        return f"may_goto {_target(insn)}"
    w = "w" if insn.cls == Class.JMP32 else "r"
    rhs = f"{w}{insn.src}" if opcode & SRC_X else str(insn.imm)
    symbol = isa.JUMP_BY_CODE[opcode & 0xF0].symbol
    return f"if {w}{insn.dst} {symbol} {rhs} goto {_target(insn)}"


def _fmt_ld(insn: Instruction) -> str:
    if insn.opcode == LD_IMM64:
        if insn.src == PseudoLoad.NONE:
            value = insn.reference or f"0x{insn.imm & 0xFFFF_FFFF_FFFF_FFFF:x}"
            return f"r{insn.dst} = {value} ll"
        imm = insn.imm & 0xFFFF_FFFF_FFFF_FFFF
        lo, hi = insn.reference or str(isa._signed32(imm & 0xFFFF_FFFF)), imm >> 32
        return f"ld_pseudo r{insn.dst}, {insn.src}, {lo}" + (f", {isa._signed32(hi)}" if hi else "")
    ctype = insn.size.ctype
    if insn.mode == Mode.ABS:
        return f"r0 = *({ctype} *)skb[{insn.imm}]"
    index = f"r{insn.src}" + (f" + {insn.imm}" if insn.imm else "")
    return f"r0 = *({ctype} *)skb[{index}]"


def _fmt_ldx(insn: Instruction) -> str:
    sign = "s" if insn.mode == Mode.MEMSX else "u"
    return f"r{insn.dst} = *({sign}{8 * insn.size.nbytes} *){_mem(insn.src, insn.off)}"


def _fmt_st(insn: Instruction) -> str:
    return f"*({insn.size.ctype} *){_mem(insn.dst, insn.off)} = {insn.imm}"


def _fmt_stx(insn: Instruction) -> str:
    ctype, d, s, off = insn.size.ctype, insn.dst, insn.src, insn.off
    if insn.mode == Mode.MEM:
        return f"*({ctype} *){_mem(d, off)} = r{s}"
    w = "r" if insn.size == Size.DW else "w"
    op = AtomicOp(insn.imm)
    if op == AtomicOp.LOAD_ACQ:
        return f"{w}{d} = load_acquire(({ctype} *){_mem(s, off)})"
    if op == AtomicOp.STORE_REL:
        return f"store_release(({ctype} *){_mem(d, off)}, {w}{s})"
    addr = _mem(d, off)[1:-1]
    bits = "_64" if insn.size == Size.DW else "32_32"
    if op == AtomicOp.XCHG:
        return f"{w}{s} = xchg{bits}({addr}, {w}{s})"
    if op == AtomicOp.CMPXCHG:
        return f"{w}0 = cmpxchg{bits}({addr}, {w}0, {w}{s})"
    alu = AluOp[op.name.replace("FETCH_", "")]
    if op.fetches:
        return f"{w}{s} = atomic_fetch_{alu.name.lower()}(({ctype} *){_mem(d, off)}, {w}{s})"
    return f"lock *({ctype} *){_mem(d, off)} {alu.symbol} {w}{s}"


_FORMATTERS = {
    Class.LD: _fmt_ld, Class.LDX: _fmt_ldx, Class.ST: _fmt_st, Class.STX: _fmt_stx,
    Class.ALU: _fmt_alu, Class.ALU64: _fmt_alu, Class.JMP: _fmt_jmp, Class.JMP32: _fmt_jmp,
}


def format_instruction(insn: Instruction) -> str:
    """One instruction in LLVM syntax (``r0 = *(u32 *)(r1 + 4)``)."""
    return _FORMATTERS[insn.opcode & 0x07](insn)


format = format_instruction


def format_program(insns: Iterable[Instruction], *, labels: bool = False) -> str:
    """A program as text, one instruction a line, symbols as ``name:`` lines.

    With *labels*, jumps and calls by offset get synthesised labels
    (``LBB0_N``) instead of numeric offsets.
    """
    insns = list(insns)
    if labels:
        insns = _label_targets(insns)
    lines = []
    for insn in insns:
        if insn.symbol:
            lines.append(f"{insn.symbol}:")
        lines.append(f"\t{format_instruction(insn)}")
    return "\n".join(lines) + ("\n" if lines else "")


def _label_targets(insns: list[Instruction]) -> list[Instruction]:
    """Replace numeric jump/call offsets by labels on their targets."""
    starts, pc = [], 0
    for insn in insns:
        starts.append(pc)
        pc += insn.slots
    index_of = {slot: i for i, slot in enumerate(starts)}
    names: dict[int, str] = {}

    def target_of(i: int, insn: Instruction) -> int | None:
        if insn.reference:
            return None
        if insn.is_jump:
            offset = insn.jump_offset
        elif insn.opcode == CALL and insn.src == PseudoCall.CALL:
            offset = insn.imm
        else:
            return None
        return index_of.get(starts[i] + insn.slots + offset)

    for i, insn in enumerate(insns):
        t = target_of(i, insn)
        if t is not None and insns[t].symbol is None:
            names.setdefault(t, f"LBB0_{starts[t]}")
    out = []
    for i, insn in enumerate(insns):
        t = target_of(i, insn)
        if t is not None:
            insn = replace(insn, reference=insns[t].symbol or names[t])
        if i in names:
            insn = replace(insn, symbol=names[i])
        out.append(insn)
    return out


def disassemble(data: bytes, byteorder: str = "little") -> list[Instruction]:
    """Decode bytecode (see :func:`pybpfasm.isa.decode`)."""
    return isa.decode(data, byteorder)


def dis(data: bytes | Sequence[Instruction], *, file: IO[str] | None = None,
        byteorder: str = "little") -> None:
    """Print a listing: slot number, raw bytes and text of each instruction."""
    insns = disassemble(bytes(data), byteorder) if isinstance(data, (bytes, bytearray)) else list(data)
    out = file or sys.stdout
    pc = 0
    for insn in insns:
        raw = isa.encode([insn], byteorder)
        print(f"{pc:5d}: {raw[:8].hex(' ')}\t{format_instruction(insn)}", file=out)
        if insn.slots == 2:
            print(f"{pc + 1:5d}: {raw[8:].hex(' ')}", file=out)
        pc += insn.slots


# -- parsing ---------------------------------------------------------------------
class Token(NamedTuple):
    kind: str  # "name", "num" or "op"
    text: str
    col: int


_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<comment>//.*|;.*)"
    r"|(?P<op>s>>=|s/=|s%=|s>=|s<=|s>|s<|<<=|>>=|<<|>>|[-+*/%|&^=!<>]=|[<>=&()\[\]*+\-,:#])"
    r"|(?P<num>0[xX][0-9a-fA-F]+|\d+)"
    r"|(?P<name>[A-Za-z_.$][\w.$]*)"
)
_KERNEL_PREFIX = re.compile(r"\s*(\d+):\s+\(([0-9a-f]{2})\)\s")
_OBJDUMP_PREFIX = re.compile(r"\s*[0-9a-f]+:\s+(?:[0-9a-f]{2} ){7}[0-9a-f]{2}"
                             r"(?: (?:[0-9a-f]{2} ){7}[0-9a-f]{2})?(\s|$)")
_REG = re.compile(r"([rw])(\d+)$")
_ENDIAN = re.compile(r"(be|le|bswap)(\d+)$")
_OBJDUMP_SYMBOL = re.compile(r"\s*[0-9a-f]+ <([\w.$]+)>:\s*$")
_IGNORED_DIRECTIVES = frozenset({".text", ".globl", ".global", ".p2align", ".align", ".type",
                                 ".size", ".file"})
_LOAD_TYPES = {f"{sign}{8 * s.nbytes}": (s, sign == "s") for s in Size for sign in "us"
               if not (sign == "s" and s == Size.DW)}
_ALU_BY_SYMBOL = {op.symbol: op for op in AluOp if op is not AluOp.MOV}
_JUMP_BY_SYMBOL = {op.symbol: op for op in JumpOp}
_ATOMIC_BY_SYMBOL = {"+=": AtomicOp.ADD, "|=": AtomicOp.OR, "&=": AtomicOp.AND, "^=": AtomicOp.XOR}


def _tokenize(line: str, start: int, err) -> list[Token]:
    tokens: list[Token] = []
    pos = start
    while pos < len(line):
        if line[pos] == "#" and (pos == 0 or line[pos - 1].isspace()):
            break  # '#' comment; 'name#1' (kernel helper ids) is a token
        m = _TOKEN.match(line, pos)
        if not m:
            raise err(pos, f"unexpected character {line[pos]!r}")
        kind = m.lastgroup
        if kind == "comment":
            break
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


class _LineParser:
    """Recursive-descent parser for one line's tokens."""

    def __init__(self, tokens: list[Token], end_col: int, err, opcode_hint: int | None) -> None:
        self.toks, self.pos, self.end_col, self.err, self.hint = tokens, 0, end_col, err, opcode_hint

    # token helpers
    def peek(self, k: int = 0) -> Token | None:
        i = self.pos + k
        return self.toks[i] if i < len(self.toks) else None

    def col(self) -> int:
        tok = self.peek()
        return tok.col if tok else self.end_col

    def fail(self, message: str, col: int | None = None) -> BPFError:
        return self.err(self.col() if col is None else col, message)

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.fail("unexpected end of line")
        self.pos += 1
        return tok

    def at(self, *texts: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.text in texts

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> Token:
        if not self.at(text):
            tok = self.peek()
            raise self.fail(f"expected {text!r}" + (f", found {tok.text!r}" if tok else ""))
        return self.next()

    def done(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise self.fail(f"unexpected {tok.text!r}")

    # operands
    def is_reg(self, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok is not None and tok.kind == "name" and _REG.match(tok.text) is not None

    def reg(self) -> tuple[int, str]:
        """A register: (number, 'r' or 'w')."""
        tok = self.peek()
        m = _REG.match(tok.text) if tok and tok.kind == "name" else None
        if not m or int(m.group(2)) > 10:
            raise self.fail("expected a register r0-r10 or w0-w10")
        self.pos += 1
        return int(m.group(2)), m.group(1)

    def reg_of(self, width: str) -> int:
        col = self.col()
        n, w = self.reg()
        if w != width:
            raise self.fail(f"expected {width}{n}, not {w}{n}: operand widths must match", col)
        return n

    def number(self, lo: int, hi: int, what: str = "immediate") -> int:
        col = self.col()
        negative = self.accept("-")
        if not negative:
            self.accept("+")
        tok = self.next()
        if tok.kind != "num":
            raise self.fail(f"expected a number, found {tok.text!r}", tok.col)
        value = -int(tok.text, 0) if negative else int(tok.text, 0)
        if not lo <= value <= hi:
            raise self.fail(f"{what} {value} out of range [{lo}, {hi}]", col)
        return value

    def imm32(self) -> int:
        return isa._s32(self.number(-(1 << 31), (1 << 32) - 1))

    def offset16(self) -> int:
        return self.number(-0x8000, 0x7FFF, "offset")

    def target(self, *, long: bool = False) -> tuple[int, str | None]:
        """A jump target: ``+N``, ``-N``, ``pc+N`` or a label."""
        tok = self.peek()
        if tok is not None and tok.kind == "name" and tok.text != "pc":
            self.pos += 1
            return 0, tok.text
        self.accept("pc")
        if long:
            return self.number(-(1 << 31), (1 << 31) - 1, "offset"), None
        return self.offset16(), None

    def mem(self) -> tuple[int, int]:
        """``(rN + off)`` -> (register, offset)."""
        self.expect("(")
        reg = self.reg_of("r")
        off = 0 if self.at(")") else self.offset16()
        self.expect(")")
        return reg, off

    def typed_ptr(self) -> tuple[Size, bool]:
        """``(u32 *)`` -> (size, signed)."""
        self.expect("(")
        tok = self.next()
        if tok.text not in _LOAD_TYPES:
            raise self.fail(f"unknown access type {tok.text!r}", tok.col)
        self.expect("*")
        self.expect(")")
        return _LOAD_TYPES[tok.text]

    # statements
    def instruction(self) -> Instruction:
        tok = self.peek()
        handler = _STATEMENTS.get(tok.text) if tok.kind != "num" else None
        if handler:
            self.pos += 1
            insn = handler(self)
        elif tok.text == "*":
            insn = self.store()
        elif self.is_reg():
            insn = self.assignment()
        else:
            raise self.fail(f"unknown instruction {tok.text!r}")
        self.done()
        return insn

    def store(self) -> Instruction:
        size, _signed = self.star_ptr()
        dst, off = self.mem()
        self.expect("=")
        if self.is_reg():
            return Instruction(Class.STX | Mode.MEM | size, dst, self.reg()[0], off)
        return Instruction(Class.ST | Mode.MEM | size, dst, 0, off, self.imm32())

    def star_ptr(self) -> tuple[Size, bool]:
        col = self.col()
        self.expect("*")
        size, signed = self.typed_ptr()
        if signed:
            raise self.fail("stores take unsigned types", col)
        return size, signed

    def assignment(self) -> Instruction:
        dst, w = self.reg()
        cls = Class.ALU if w == "w" else Class.ALU64
        tok = self.next()
        if tok.text in _ALU_BY_SYMBOL:
            op = _ALU_BY_SYMBOL[tok.text]
            if self.is_reg():
                return Instruction(cls | op.code | SRC_X, dst, self.reg_of(w), op.off)
            return Instruction(cls | op.code, dst, 0, op.off, self.imm32())
        if tok.text != "=":
            raise self.fail(f"expected an assignment operator, found {tok.text!r}", tok.col)
        return self.rhs(dst, w)

    def rhs(self, dst: int, w: str) -> Instruction:
        cls = Class.ALU if w == "w" else Class.ALU64
        tok = self.peek()
        if tok is None:
            raise self.fail("expected a value after '='")
        if tok.text == "-" and self.is_reg(1):
            self.pos += 1
            col = self.col()
            if self.reg_of(w) != dst:
                raise self.fail("negation must be in place (rN = -rN)", col)
            return Instruction(cls | NEG_OP, dst)
        if self.is_reg():
            return Instruction(cls | MOV_OP | SRC_X, dst, self.reg_of(w))
        if tok.text == "(":
            return self.movsx(dst, w, cls)
        if tok.text == "*":
            return self.load(dst, w)
        if tok.kind == "name" and tok.text in _FUNCTIONS:
            self.pos += 1
            return _FUNCTIONS[tok.text](self, dst, w)
        if tok.kind == "name":
            self.pos += 1
            self.expect("ll")
            self.want_r(dst, w)
            return Instruction(LD_IMM64, dst, 0, 0, 0, reference=tok.text)
        if self.at("-", "+") or tok.kind == "num":
            col = self.col()
            save = self.pos
            value = self.number(-(1 << 63), (1 << 64) - 1)
            if self.accept("ll") or self.hint == LD_IMM64:
                self.want_r(dst, w)
                return Instruction(LD_IMM64, dst, 0, 0, isa._s64(value))
            self.pos = save
            if not -(1 << 31) <= value < (1 << 32):
                raise self.fail(f"immediate {value} needs ld_imm64: append ' ll'", col)
            return Instruction(cls | MOV_OP, dst, 0, 0, self.imm32())
        raise self.fail(f"unexpected {tok.text!r}")

    def want_r(self, dst: int, w: str) -> None:
        if w != "r":
            raise self.fail(f"ld_imm64 loads a 64-bit register: write r{dst}")

    def movsx(self, dst: int, w: str, cls: int) -> Instruction:
        self.expect("(")
        tok = self.next()
        bits = {"s8": 8, "s16": 16, "s32": 32}.get(tok.text)
        if bits is None or (bits == 32 and w == "w"):
            raise self.fail(f"unknown sign-extension {tok.text!r}", tok.col)
        self.expect(")")
        return Instruction(cls | MOV_OP | SRC_X, dst, self.reg_of(w), bits)

    def load(self, dst: int, w: str) -> Instruction:
        self.expect("*")
        col = self.col()
        size, signed = self.typed_ptr()
        if self.accept("skb"):
            if dst != 0:
                raise self.fail("legacy packet loads write r0", col)
            if signed or size == Size.DW:
                raise self.fail("legacy packet loads are u8, u16 or u32", col)
            self.expect("[")
            if self.is_reg():
                src = self.reg_of("r")
                imm = self.imm32() if self.accept("+") else 0
                self.expect("]")
                return Instruction(Class.LD | Mode.IND | size, 0, src, 0, imm)
            imm = self.imm32()
            self.expect("]")
            return Instruction(Class.LD | Mode.ABS | size, 0, 0, 0, imm)
        src, off = self.mem()
        mode = Mode.MEMSX if signed else Mode.MEM
        return Instruction(Class.LDX | mode | size, dst, src, off)

    # atomics and other function-call syntaxes, after "dst ="
    def fetch(self, name: str, dst: int, w: str) -> Instruction:
        op = AtomicOp["FETCH_" + name.rsplit("_", 1)[1].upper()]
        self.expect("(")
        size, _ = self.typed_ptr()
        ptr, off = self.mem()
        self.expect(",")
        col = self.col()
        src = self.reg()[0]
        self.expect(")")
        if src != dst:
            raise self.fail("atomic fetch returns into its source register", col)
        return self.rmw(size, ptr, off, src, op)

    def rmw(self, size: Size, ptr: int, off: int, src: int, op: AtomicOp) -> Instruction:
        if size not in (Size.W, Size.DW):
            raise self.fail("atomic operations are u32 or u64")
        return Instruction(Class.STX | Mode.ATOMIC | size, ptr, src, off, int(op))

    def xchg_llvm(self, name: str, dst: int, w: str) -> Instruction:
        """``r2 = xchg_64(r1 + 8, r2)`` / ``r0 = cmpxchg_64(r1 + 8, r0, r2)``."""
        size = Size.DW if name.endswith("_64") else Size.W
        self.expect("(")
        ptr = self.reg_of("r")
        off = self.offset16() if not self.at(",") else 0
        return self.xchg_tail(name.startswith("cmp"), size, ptr, off, dst)

    def xchg_kernel(self, name: str, dst: int, w: str) -> Instruction:
        """``r2 = atomic64_xchg((u64 *)(r1 +8), r2)``, ``atomic_cmpxchg`` likewise."""
        self.expect("(")
        size, _ = self.typed_ptr()
        ptr, off = self.mem()
        return self.xchg_tail(name.endswith("cmpxchg"), size, ptr, off, dst)

    def xchg_tail(self, cmp: bool, size: Size, ptr: int, off: int, dst: int) -> Instruction:
        if cmp:
            self.expect(",")
            col = self.col()
            if self.reg()[0] != 0 or dst != 0:
                raise self.fail("cmpxchg compares and returns r0", col)
        self.expect(",")
        col = self.col()
        src = self.reg()[0]
        self.expect(")")
        if not cmp and src != dst:
            raise self.fail("xchg returns into its source register", col)
        return self.rmw(size, ptr, off, src, AtomicOp.CMPXCHG if cmp else AtomicOp.XCHG)

    def load_acquire(self, name: str, dst: int, w: str) -> Instruction:
        self.expect("(")
        size, _ = self.typed_ptr()
        src, off = self.mem()
        self.expect(")")
        return Instruction(Class.STX | Mode.ATOMIC | size, dst, src, off, AtomicOp.LOAD_ACQ)

    def endian(self, name: str, dst: int, w: str) -> Instruction:
        col = self.col()
        if self.reg()[0] != dst:
            raise self.fail("byte swaps are in place (rN = be16 rN)", col)
        kind, bits = _ENDIAN.match(name).groups()
        bits = int(bits)
        if kind == "bswap":
            return Instruction(Class.ALU64 | END_OP, dst, 0, 0, bits)
        return Instruction(Class.ALU | END_OP | (SRC_X if kind == "be" else 0), dst, 0, 0, bits)

    def addr_space_cast(self, name: str, dst: int, w: str) -> Instruction:
        self.expect("(")
        src = self.reg_of("r")
        self.expect(",")
        dst_as = self.number(0, 0xFFFF, "address space")
        self.expect(",")
        src_as = self.number(0, 0xFFFF, "address space")
        self.expect(")")
        return Instruction(Class.ALU64 | MOV_OP | SRC_X, dst, src, ADDR_SPACE_CAST,
                           isa._s32(dst_as << 16 | src_as))


def _st_exit(p: _LineParser) -> Instruction:
    return Instruction(EXIT)


def _st_call(p: _LineParser) -> Instruction:
    tok = p.peek()
    if tok is None:
        raise p.fail("expected a helper id, 'pc+N', 'kfunc#ID' or a label")
    if tok.text == "kfunc" and p.peek(1) is not None and p.peek(1).text == "#":
        p.pos += 2
        btf_id = p.imm32()
        off = p.offset16() if p.accept(",") else 0
        return Instruction(CALL, 0, PseudoCall.KFUNC, off, btf_id)
    if tok.text == "pc":
        p.pos += 1
        return Instruction(CALL, 0, PseudoCall.CALL, 0, p.imm32())
    if tok.kind == "name":
        p.pos += 1
        if p.accept("#"):  # kernel printout: call bpf_map_lookup_elem#1
            return Instruction(CALL, 0, PseudoCall.HELPER, 0, p.imm32())
        return Instruction(CALL, 0, PseudoCall.CALL, 0, -1, reference=tok.text)
    return Instruction(CALL, 0, PseudoCall.HELPER, 0, p.imm32())


def _st_jump(opcode: int, *, long: bool = False):
    def parse(p: _LineParser) -> Instruction:
        offset, ref = p.target(long=long)
        if long:
            return Instruction(opcode, 0, 0, 0, offset, reference=ref)
        return Instruction(opcode, 0, 0, offset, 0, reference=ref)
    return parse


def _st_indirect(opcode: int):
    def parse(p: _LineParser) -> Instruction:
        return Instruction(opcode, p.reg_of("r"))
    return parse


def _st_if(p: _LineParser) -> Instruction:
    dst, w = p.reg()
    tok = p.next()
    op = _JUMP_BY_SYMBOL.get(tok.text)
    if op is None:
        raise p.fail(f"unknown comparison {tok.text!r}", tok.col)
    cls = Class.JMP32 if w == "w" else Class.JMP
    if p.is_reg():
        src, imm, opcode = p.reg_of(w), 0, cls | op.code | SRC_X
    else:
        src, imm, opcode = 0, p.imm32(), cls | op.code
    p.expect("goto")
    offset, ref = p.target()
    return Instruction(opcode, dst, src, offset, imm, reference=ref)


def _st_lock(p: _LineParser) -> Instruction:
    size, _ = p.star_ptr()
    ptr, off = p.mem()
    tok = p.next()
    op = _ATOMIC_BY_SYMBOL.get(tok.text)
    if op is None:
        raise p.fail(f"unknown atomic operator {tok.text!r}", tok.col)
    return p.rmw(size, ptr, off, p.reg()[0], op)


def _st_store_release(p: _LineParser) -> Instruction:
    p.expect("(")
    size, _ = p.typed_ptr()
    dst, off = p.mem()
    p.expect(",")
    src = p.reg()[0]
    p.expect(")")
    return Instruction(Class.STX | Mode.ATOMIC | size, dst, src, off, AtomicOp.STORE_REL)


def _st_ld_pseudo(p: _LineParser) -> Instruction:
    dst = p.reg_of("r")
    p.expect(",")
    src = p.number(1, max(PseudoLoad), "pseudo source")
    p.expect(",")
    tok = p.peek()
    ref = None
    if tok is not None and tok.kind == "name":
        p.pos += 1
        ref, lo = tok.text, 0
    else:
        lo = p.imm32()
    hi = p.imm32() if p.accept(",") else 0
    return Instruction(LD_IMM64, dst, src, 0, isa._s64((hi << 32) | (lo & 0xFFFF_FFFF)),
                       reference=ref)


_STATEMENTS = {
    "exit": _st_exit, "call": _st_call, "callx": _st_indirect(CALLX),
    "gotox": _st_indirect(GOTOX), "goto": _st_jump(JA), "gotol": _st_jump(GOTOL, long=True),
    "may_goto": _st_jump(JCOND), "if": _st_if, "lock": _st_lock,
    "store_release": _st_store_release, "ld_pseudo": _st_ld_pseudo,
}


def _fn(method: str, name: str):
    return lambda p, dst, w: getattr(p, method)(name, dst, w)


_FUNCTIONS = {
    **{f"atomic{b}_fetch_{op}": _fn("fetch", f"fetch_{op}")
       for b in ("", "64") for op in ("add", "or", "and", "xor")},
    "xchg_64": _fn("xchg_llvm", "xchg_64"), "xchg32_32": _fn("xchg_llvm", "xchg32_32"),
    "cmpxchg_64": _fn("xchg_llvm", "cmpxchg_64"),
    "cmpxchg32_32": _fn("xchg_llvm", "cmpxchg32_32"),
    **{f"atomic{b}_{op}": _fn("xchg_kernel", op) for b in ("", "64") for op in ("xchg", "cmpxchg")},
    "load_acquire": _fn("load_acquire", "load_acquire"),
    "addr_space_cast": _fn("addr_space_cast", "addr_space_cast"),
    **{f"{kind}{bits}": _fn("endian", f"{kind}{bits}")
       for kind in ("be", "le", "bswap") for bits in (16, 32, 64)},
}


def parse(text: str, filename: str = "<input>") -> list[Instruction]:
    """Parse assembler text into instructions.

    Labels (``name:``) become the ``symbol`` of the next instruction; every
    instruction's ``source`` is its file and line.  Raises
    :class:`AsmSyntaxError` (``file:line:col: message``) on bad input.
    """
    insns: list[Instruction] = []
    pending: list[tuple[str, int, int]] = []  # labels waiting for an instruction
    aliases: dict[str, str] = {}  # extra labels on one instruction -> its symbol
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        def err(col: int, message: str, lineno: int = lineno) -> AsmSyntaxError:
            return AsmSyntaxError(filename, lineno, col + 1, message)

        start, hint = 0, None
        symbol_line = _OBJDUMP_SYMBOL.match(line)
        if symbol_line:  # llvm-objdump: "0000000000000000 <func>:"
            line = f"{symbol_line.group(1)}:"
        m = _KERNEL_PREFIX.match(line) or _OBJDUMP_PREFIX.match(line)
        if m:
            start = m.end()
            if m.re is _KERNEL_PREFIX:
                hint = int(m.group(2), 16)
        tokens = _tokenize(line, start, err)
        if tokens and tokens[0].kind == "name" and tokens[0].text.startswith("."):
            if tokens[0].text not in _IGNORED_DIRECTIVES:
                raise err(tokens[0].col, f"unsupported directive {tokens[0].text!r}")
            continue
        while len(tokens) >= 2 and tokens[1].text == ":" and tokens[0].kind == "name":
            name = tokens[0].text
            if _REG.match(name):
                raise err(tokens[0].col, f"{name!r} is a register, not a label")
            if name in seen:
                raise err(tokens[0].col, f"label {name!r} already defined on line {seen[name]}")
            seen[name] = lineno
            pending.append((name, lineno, tokens[0].col))
            tokens = tokens[2:]
        if not tokens:
            continue
        insn = _LineParser(tokens, len(line), err, hint).instruction()
        if hint is not None and insn.opcode != hint:
            raise err(start, f"instruction text does not match its opcode ({hint:02x}), "
                             f"it encodes as {insn.opcode:02x}")
        symbol = None
        if pending:
            symbol = pending[0][0]
            for name, _, _ in pending[1:]:
                aliases[name] = symbol
            pending.clear()
        insns.append(replace(insn, symbol=symbol,
                             source=SourceLocation(filename, lineno, tokens[0].col + 1)))
    if pending:
        name, lineno, col = pending[0]
        raise AsmSyntaxError(filename, lineno, col + 1, f"label {name!r} names no instruction")
    if aliases:
        insns = [replace(i, reference=aliases.get(i.reference, i.reference)) if i.reference else i
                 for i in insns]
    return insns
