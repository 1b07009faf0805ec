"""The text syntax of BPF: parse and format, plus a ``dis``-like API.

Output is the LLVM assembler syntax in LLVM's alu32 naming mode (what clang
``-mcpu=v3`` and later accepts and llvm-objdump prints): an access of 32 bits
or less through a register names it ``wN``, a 64-bit one ``rN``; ``hex=True``
prints immediates and offsets in hex as llvm-objdump does by default.

Input is any of:

* LLVM's syntax, as clang reads it: ``;`` separates statements, comments are
  ``//``, ``#`` and ``/* */``; literals in hex, ``0b`` binary, octal after a
  leading zero, characters (``'a'``), with LLVM's ignored suffixes (``1ll`` is
  1); ``.equ``/``.set`` constants and GNU-precedence expressions; local labels
  (``1:``, ``goto 1b``/``1f``); ``.8byte``/``.quad`` raw slots; uppercase
  registers; clang's width rules (``w0 = *(u64 *)...`` is an error);
* the kernel verifier's printout (``0: (b7) r0 = 0  ; R0=0``: there ``;``
  starts the state comment), ``call bpf_map_lookup_elem#1`` (a helper, whose
  id must match its name) and ``call bpf_task_acquire#12345`` (a kfunc);
* bpftool's xlated dumps, with their opcode bytes when given; kernel-internal
  forms (``r11``, ``r0 = &(void __percpu *)(r0)``, ``map[id:N]``) are read
  and flagged (``Instruction.internal``), and assembling them is an error;
* llvm-objdump listings, with or without raw bytes, symbolized targets and
  ``-r`` relocation lines.

A few encodings have no LLVM spelling; they use the nearest kernel-style form:

==============================  =======================================
``call pc+5``                   bpf-to-bpf call by offset (kernel form)
``call kfunc#ID`` [``, OFF``]   kernel function call by BTF id
``r0 = *(u16 *)skb[r1 + 4]``    ld_ind with a non-zero immediate
``ld_pseudo r1, SRC, IMM, HI``  ld_imm64 pseudo load whose second slot is set
==============================  =======================================

Symbolic forms resolved by :mod:`pybpfasm.asm`: ``goto LABEL``, ``call LABEL``,
``r1 = NAME ll`` (a map or a function) and ``ld_pseudo r1, SRC, NAME[, HI]``.
:func:`parse_unit` also keeps what an object file needs (``.section``,
``.globl``, ``.map``, the license).
"""

from __future__ import annotations

import re
import struct
import sys
from dataclasses import dataclass, replace
from typing import IO, Callable, Iterable, Mapping, NamedTuple, Sequence

from . import isa
from ._helper_names import NAMES as HELPER_NAMES
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

__all__ = ["AsmSyntaxError", "AsmUnit", "MapDirective", "dis", "disassemble", "format",
           "format_instruction", "format_program", "label_targets", "literal", "parse", "parse_unit"]


class AsmSyntaxError(BPFError):
    """A syntax error, printed as ``file:line:col: message``."""

    exit_code = 2

    def __init__(self, file: str, line: int, col: int, message: str) -> None:
        super().__init__(f"{file}:{line}:{col}: {message}")
        self.file, self.line, self.col, self.message = file, line, col, message


# -- formatting ----------------------------------------------------------------
# One naming mode, LLVM's for -mcpu=v3 and later (alu32): an access of 32 bits or
# less through a register names it wN (loads, stores, atomics, load_acquire);
# 64-bit accesses, sign-extending loads and legacy packet loads name rN.
Num = Callable[[int], str]


def _dec(value: int) -> str:
    return str(value)


def _hex(value: int) -> str:
    """LLVM's --print-imm-hex: signed hex (``-0x1``)."""
    return f"-0x{-value:x}" if value < 0 else f"0x{value:x}"


def _signed(value: int, num: Num) -> str:
    """``+N`` / ``-N`` with the magnitude in *num*'s base."""
    return f"{'-' if value < 0 else '+'}{num(abs(value))}"


def _mem(reg: int, off: int, num: Num) -> str:
    return f"(r{reg} {'-' if off < 0 else '+'} {num(abs(off))})"


def _target(insn: Instruction, num: Num) -> str:
    return insn.reference if insn.reference else _signed(insn.jump_offset, num)


def _narrow(size: Size) -> str:
    return "r" if size == Size.DW else "w"


def _fmt_alu(insn: Instruction, num: Num) -> str:
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
        if insn.off == -1 and insn.internal:
            return f"r{d} = &(void __percpu *)(r{s})"
        return f"{w}{d} = (s{insn.off}){w}{s}"
    symbol = isa.ALU_BY_CODE[(op, insn.off)].symbol
    return f"{w}{d} {symbol} {w}{s}" if x else f"{w}{d} {symbol} {num(insn.imm)}"


def _fmt_jmp(insn: Instruction, num: Num) -> str:
    opcode = insn.opcode
    if opcode == EXIT:
        return "exit"
    if opcode == CALL:
        if insn.src == PseudoCall.HELPER:
            return f"call {num(insn.imm)}"
        if insn.src == PseudoCall.CALL:
            return f"call {insn.reference}" if insn.reference else f"call pc{insn.imm:+d}"
        return f"call kfunc#{insn.imm}" + (f", {insn.off}" if insn.off else "")
    if opcode == CALLX:
        return f"callx r{insn.callx_register}"
    if opcode == GOTOX:
        return f"gotox r{insn.dst}"
    if opcode == JA:
        return f"goto {_target(insn, num)}"
    if opcode == GOTOL:
        return f"gotol {_target(insn, num)}"
    if opcode == JCOND:
        return f"may_goto {_target(insn, num)}"
    w = "w" if insn.cls == Class.JMP32 else "r"
    rhs = f"{w}{insn.src}" if opcode & SRC_X else num(insn.imm)
    symbol = isa.JUMP_BY_CODE[opcode & 0xF0].symbol
    return f"if {w}{insn.dst} {symbol} {rhs} goto {_target(insn, num)}"


def _fmt_ld(insn: Instruction, num: Num) -> str:
    if insn.opcode == LD_IMM64:
        if insn.src == PseudoLoad.NONE:
            value = insn.imm if num is _hex else insn.imm & 0xFFFF_FFFF_FFFF_FFFF
            return f"r{insn.dst} = {insn.reference or _hex(value)} ll"
        imm = insn.imm & 0xFFFF_FFFF_FFFF_FFFF
        lo, hi = insn.reference or num(isa._signed32(imm & 0xFFFF_FFFF)), imm >> 32
        return f"ld_pseudo r{insn.dst}, {num(insn.src)}, {lo}" + (f", {num(isa._signed32(hi))}" if hi else "")
    ctype = insn.size.ctype
    if insn.mode == Mode.ABS:
        return f"r0 = *({ctype} *)skb[{num(insn.imm)}]"
    index = f"r{insn.src}" + (f" + {num(insn.imm)}" if insn.imm else "")
    return f"r0 = *({ctype} *)skb[{index}]"


def _fmt_ldx(insn: Instruction, num: Num) -> str:
    if insn.mode == Mode.MEMSX:
        return f"r{insn.dst} = *(s{8 * insn.size.nbytes} *){_mem(insn.src, insn.off, num)}"
    return f"{_narrow(insn.size)}{insn.dst} = *({insn.size.ctype} *){_mem(insn.src, insn.off, num)}"


def _fmt_st(insn: Instruction, num: Num) -> str:
    return f"*({insn.size.ctype} *){_mem(insn.dst, insn.off, num)} = {num(insn.imm)}"


def _fmt_stx(insn: Instruction, num: Num) -> str:
    ctype, d, s, off = insn.size.ctype, insn.dst, insn.src, insn.off
    w = _narrow(insn.size)
    if insn.mode == Mode.MEM:
        return f"*({ctype} *){_mem(d, off, num)} = {w}{s}"
    op = AtomicOp(insn.imm)
    if op == AtomicOp.LOAD_ACQ:
        return f"{w}{d} = load_acquire(({ctype} *){_mem(s, off, num)})"
    if op == AtomicOp.STORE_REL:
        return f"store_release(({ctype} *){_mem(d, off, num)}, {w}{s})"
    addr = _mem(d, off, num)[1:-1]
    bits = "_64" if insn.size == Size.DW else "32_32"
    if op == AtomicOp.XCHG:
        return f"{w}{s} = xchg{bits}({addr}, {w}{s})"
    if op == AtomicOp.CMPXCHG:
        return f"{w}0 = cmpxchg{bits}({addr}, {w}0, {w}{s})"
    alu = AluOp[op.name.replace("FETCH_", "")]
    if op.fetches:
        return f"{w}{s} = atomic_fetch_{alu.name.lower()}(({ctype} *){_mem(d, off, num)}, {w}{s})"
    return f"lock *({ctype} *){_mem(d, off, num)} {alu.symbol} {w}{s}"


_FORMATTERS = {
    Class.LD: _fmt_ld, Class.LDX: _fmt_ldx, Class.ST: _fmt_st, Class.STX: _fmt_stx,
    Class.ALU: _fmt_alu, Class.ALU64: _fmt_alu, Class.JMP: _fmt_jmp, Class.JMP32: _fmt_jmp,
}


def format_instruction(insn: Instruction, *, hex: bool = False) -> str:
    """One instruction in LLVM syntax (``w0 = *(u32 *)(r1 + 4)``); *hex* prints
    immediates and offsets in hex, as llvm-objdump does by default since LLVM 19."""
    return _FORMATTERS[insn.opcode & 0x07](insn, _hex if hex else _dec)


format = format_instruction


def format_program(insns: Iterable[Instruction], *, labels: bool = False, hex: bool = False) -> str:
    """A program as text, one instruction a line, symbols as ``name:`` lines.

    With *labels*, jumps and calls by offset get synthesised labels
    (``LBB0_N``) instead of numeric offsets.
    """
    insns = list(insns)
    if labels:
        insns = label_targets(insns)
    lines = []
    for insn in insns:
        if insn.symbol:
            lines.append(f"{insn.symbol}:")
        lines.append(f"\t{format_instruction(insn, hex=hex)}")
    return "\n".join(lines) + ("\n" if lines else "")


def label_targets(insns: list[Instruction], prefix: str = "LBB0_") -> list[Instruction]:
    """Replace numeric jump/call offsets by labels (*prefix* + slot) on their targets."""
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
            names.setdefault(t, f"{prefix}{starts[t]}")
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
        byteorder: str = "little", hex: bool = False) -> None:
    """Print a listing: slot number, raw bytes and text of each instruction."""
    insns = disassemble(bytes(data), byteorder) if isinstance(data, (bytes, bytearray)) else list(data)
    out = file or sys.stdout
    pc = 0
    for insn in insns:
        raw = isa.encode([insn], byteorder)
        print(f"{pc:5d}: {raw[:8].hex(' ')}\t{format_instruction(insn, hex=hex)}", file=out)
        if insn.slots == 2:
            print(f"{pc + 1:5d}: {raw[8:].hex(' ')}", file=out)
        pc += insn.slots


# -- parsing ---------------------------------------------------------------------
class Token(NamedTuple):
    kind: str  # "name", "num", "char", "local" (1f/1b), "op" or "sep"
    text: str
    col: int


_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<comment>//.*)"
    r"|(?P<sep>;)"
    r"|(?P<char>'(?:\\.|[^\\'])')"
    r"|(?P<num>\d\w*)"
    r"|(?P<op>s>>=|s/=|s%=|s>=|s<=|s>|s<|<<=|>>=|<<|>>|[-+*/%|&^=!<>]=|[-+*/%|&^<>=()\[\],:#])"
    r"|(?P<str>\"(?:\\.|[^\"\\])*\")"
    r"|(?P<name>[A-Za-z_.$@][\w.$@]*)"
)
_NUMBER = re.compile(r"(?:0[xX](?P<hex>[0-9a-fA-F]+)|0[bB](?P<bin>[01]+)|(?P<dec>\d+))"
                     r"[uU]?[lL]{0,2}$")
_LOCAL_REF = re.compile(r"(\d+)([bf])$")
_CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", "'": "'"}
#: a verifier line: slot, opcode byte, text ("4: (b7) r0 = 0")
_KERNEL_PREFIX = re.compile(r"\s*(\d+):\s+\(([0-9a-f]{2})\)\s")
#: an llvm-objdump line with raw bytes
_OBJDUMP_PREFIX = re.compile(r"\s*[0-9a-f]+:\s+(?:[0-9a-f]{2} ){7}[0-9a-f]{2}"
                             r"(?: (?:[0-9a-f]{2} ){7}[0-9a-f]{2})?(\s|$)")
#: a listing line without raw bytes or opcodes (objdump --no-show-raw-insn, __xlated)
_LISTING_PREFIX = re.compile(r"\s*\d+:\s*[^\s;]")
#: a symbolized target llvm-objdump appends ("goto +7 <test+0x80>")
_OBJDUMP_TARGET = re.compile(r"\s+<[\w.$@]+(?:[+-]0x[0-9a-f]+)?>\s*$")
_OBJDUMP_SYMBOL = re.compile(r"\s*[0-9a-f]+ <([\w.$]+)>:\s*$")
_OBJDUMP_RELOC = re.compile(r"\s+[0-9a-f]+:\s+R_BPF_\w+\s+([\w.$]+)\s*$")
#: the bytes bpftool prints under an instruction ("dump xlated ... opcodes")
_OPCODE_BYTES = re.compile(r"\s+((?:[0-9a-f]{2} ){7}[0-9a-f]{2}(?: (?:[0-9a-f]{2} ){7}[0-9a-f]{2})?)\s*$")
_OBJDUMP_NOISE = re.compile(r"\s*(?:\S+:\s+file format \S+|Disassembly of section \S+:)\s*$")
#: bpftool's function header in xlated dumps ("long main():", "int f(void * ctx):")
_XLATED_FUNC = re.compile(r"\s*[A-Za-z_][\w ]*?[\s*]([A-Za-z_]\w*)\([^()]*\):\s*$")
_REG = re.compile(r"([rwRW])(\d+)$")
_ENDIAN = re.compile(r"(be|le|bswap)(\d+)$")
_IGNORED_DIRECTIVES = frozenset({".p2align", ".align", ".type", ".size", ".file", ".addrsig",
                                 ".addrsig_sym"})
#: the object file's license string lives in this section (libbpf's convention)
LICENSE_SECTION = "license"
_LOAD_TYPES = {f"{sign}{8 * s.nbytes}": (s, sign == "s") for s in Size for sign in "us"
               if not (sign == "s" and s == Size.DW)}
_ALU_BY_SYMBOL = {op.symbol: op for op in AluOp if op.is_binary and op is not AluOp.MOV}
_JUMP_BY_SYMBOL = {op.symbol: op for op in JumpOp if op.is_conditional}
_ATOMIC_BY_SYMBOL = {"+=": AtomicOp.ADD, "|=": AtomicOp.OR, "&=": AtomicOp.AND, "^=": AtomicOp.XOR}
#: GNU as binary operators and their precedence (LLVM's MC follows it, not C)
_BINARY = {"+": 4, "-": 4, "|": 5, "^": 5, "&": 5, "*": 6, "/": 6, "%": 6, "<<": 6, ">>": 6}
_U64 = (1 << 64) - 1
#: parentheses and signs an expression may nest (far beyond any real source; bounds the recursion)
_MAX_NESTING = 100
#: helper name as the kernel prints it ("bpf_map_lookup_elem") -> id
_HELPER_IDS = {f"bpf_{name}": i for i, name in enumerate(HELPER_NAMES) if i}
_REG_AX = "r11 is BPF_REG_AX, the kernel's scratch register"


def _quote(text: str) -> str:
    """*text* quoted for a message, cut short if it is long."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def literal(text: str) -> int:
    """Value of an integer literal as LLVM lexes it; ValueError says why it is not one.

    ``0x``/``0b`` prefixes, octal after a leading zero, and the integer
    suffixes LLVM ignores (``u``, ``l``, ``ll``: ``1ll`` is the number 1).
    """
    m = _NUMBER.match(text)
    if not m:
        raise ValueError(f"invalid number {_quote(text)}")
    digits, base = next((m.group(g), b) for g, b in (("hex", 16), ("bin", 2), ("dec", 10))
                        if m.group(g))
    if base == 10 and len(digits) > 1 and digits[0] == "0":
        bad = next((c for c in digits if c in "89"), None)
        if bad:
            raise ValueError(f"invalid digit '{bad}' in octal constant {_quote(text)}")
        base = 8
    if len(digits.lstrip("0")) > 64 or int(digits, base) > _U64:
        raise ValueError(f"number {_quote(text)} does not fit in 64 bits")
    return int(digits, base)


def _char_value(text: str) -> int:
    body = text[1:-1]
    if body.startswith("\\"):
        if body[1] not in _CHAR_ESCAPES:
            raise ValueError(f"unknown escape {body!r} in character literal")
        body = _CHAR_ESCAPES[body[1]]
    if ord(body) > 0x7F:
        raise ValueError("character literals are ASCII")
    return ord(body)


def _wrap64(value: int) -> int:
    value &= _U64
    return value - (1 << 64) if value >> 63 else value


def _binary(op: str, a: int, b: int) -> int:
    """``a op b`` in LLVM's 64-bit arithmetic; ValueError for division by zero."""
    if op in ("/", "%"):
        if b == 0:
            raise ValueError("division by zero")
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        return _wrap64(q if op == "/" else a - q * b)
    if op in ("<<", ">>"):
        if not 0 <= b < 64:
            raise ValueError(f"shift count {b} out of range")
        return _wrap64(a << b if op == "<<" else (a & _U64) >> b)
    return _wrap64({"+": a + b, "-": a - b, "*": a * b, "|": a | b, "^": a ^ b, "&": a & b}[op])


def _strip_block_comments(text: str, filename: str) -> str:
    """*text* with ``/* ... */`` comments blanked (newlines kept, so columns still count)."""
    if "/*" not in text:
        return text
    out, pos = [], 0
    while True:
        start = text.find("/*", pos)
        if start < 0:
            return "".join(out) + text[pos:]
        end = text.find("*/", start + 2)
        if end < 0:
            line = text.count("\n", 0, start) + 1
            col = start - (text.rfind("\n", 0, start) + 1) + 1
            raise AsmSyntaxError(filename, line, col, "unterminated '/*' comment")
        out += [text[pos:start], re.sub(r"[^\n]", " ", text[start:end + 2])]
        pos = end + 2


def _tokenize(line: str, start: int, err, *, verifier: bool) -> list[Token]:
    """Tokens of *line* from *start*; in a verifier line ';' starts a state comment."""
    tokens: list[Token] = []
    pos = start
    while pos < len(line):
        char = line[pos]
        if char == "#":
            last = tokens[-1] if tokens else None
            glued = last is not None and last.kind == "name" and last.col + len(last.text) == pos
            if not (glued and line[pos + 1: pos + 2] in tuple("-0123456789")):
                break  # '#' comment; 'name#1' (kernel ids) is a token
        if char == ";" and verifier:
            break
        m = _TOKEN.match(line, pos)
        if not m:
            raise err(pos, f"unexpected character {char!r}")
        kind, text = m.lastgroup, m.group()
        if kind == "comment":
            break
        if kind == "num" and _LOCAL_REF.match(text) and not _NUMBER.match(text):
            kind = "local"
        if kind != "ws":
            tokens.append(Token(kind, text, pos))
        pos = m.end()
    return tokens


def _statements(tokens: list[Token]) -> list[list[Token]]:
    """Split a line's tokens at ';' separators."""
    out: list[list[Token]] = [[]]
    for tok in tokens:
        if tok.kind == "sep":
            out.append([])
        else:
            out[-1].append(tok)
    return out


class _LineParser:
    """Recursive-descent parser for one statement's tokens."""

    def __init__(self, tokens: list[Token], end_col: int, err, opcode_hint: int | None,
                 unit: _Unit, *, kernel: bool) -> None:
        self.toks, self.pos, self.end_col, self.err, self.hint = tokens, 0, end_col, err, opcode_hint
        self.unit, self.kernel = unit, kernel
        #: why the statement is a kernel-internal form that cannot be loaded
        self.internal: str | None = None
        self.depth = 0  # of nested parentheses and signs in an expression

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
        return tok is not None and tok.kind != "char" and tok.text in texts

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> Token:
        if not self.at(text):
            tok = self.peek()
            raise self.fail(f"expected {_quote(text)}" + (f", found {_quote(tok.text)}" if tok else ""))
        return self.next()

    def done(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise self.fail(f"unexpected {_quote(tok.text)}")

    # operands
    def is_reg(self, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok is not None and tok.kind == "name" and _REG.match(tok.text) is not None

    def reg(self) -> tuple[int, str]:
        """A register: (number, 'r' or 'w'); r11 only in kernel listings."""
        tok = self.peek()
        m = _REG.match(tok.text) if tok and tok.kind == "name" else None
        n = int(m.group(2)) if m and len(m.group(2)) <= 2 else 99
        if n == 11 and self.kernel:
            self.internal = _REG_AX
        elif n > 10:
            raise self.fail("expected a register r0-r10 or w0-w10")
        self.pos += 1
        return n, m.group(1).lower()

    def reg_of(self, width: str) -> int:
        col = self.col()
        n, w = self.reg()
        if w != width:
            raise self.fail(f"expected {width}{n}, not {w}{n}: operand widths must match", col)
        return n

    def expr(self, min_prec: int = 1) -> int:
        """A constant expression (GNU precedence, 64-bit arithmetic)."""
        value = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok.kind != "op" or _BINARY.get(tok.text, 0) < min_prec:
                return value
            self.pos += 1
            rhs = self.expr(_BINARY[tok.text] + 1)
            try:
                value = _binary(tok.text, value, rhs)
            except ValueError as exc:
                raise self.fail(str(exc), tok.col) from None

    def unary(self) -> int:
        tok = self.next()
        if tok.kind == "op" and tok.text in ("-", "+", "("):
            self.depth += 1
            if self.depth > _MAX_NESTING:
                raise self.fail(f"expression nested deeper than {_MAX_NESTING}", tok.col)
            if tok.text == "(":
                value = self.expr()
                self.expect(")")
            else:
                value = self.unary()
                value = _wrap64(-value) if tok.text == "-" else value
            self.depth -= 1
            return value
        if tok.kind in ("num", "char"):
            try:
                return literal(tok.text) if tok.kind == "num" else _char_value(tok.text)
            except ValueError as exc:
                raise self.fail(str(exc), tok.col) from None
        if tok.kind == "name" and tok.text in self.unit.constants:
            return self.unit.constants[tok.text]
        raise self.fail(f"expected a number, found {_quote(tok.text)}", tok.col)

    def number(self, lo: int, hi: int, what: str = "immediate") -> int:
        col = self.col()
        value = self.expr()
        if not lo <= value <= hi:
            raise self.fail(f"{what} {value} out of range [{lo}, {hi}]", col)
        return value

    def imm32(self) -> int:
        return isa._s32(self.number(-(1 << 31), (1 << 32) - 1))

    def offset16(self) -> int:
        return self.number(-0x8000, 0x7FFF, "offset")

    def starts_value(self) -> bool:
        tok = self.peek()
        if tok is None:
            return False
        return (tok.kind in ("num", "char") or tok.text in ("-", "+", "(")
                or (tok.kind == "name" and tok.text in self.unit.constants))

    def target(self, *, long: bool = False) -> tuple[int, str | None]:
        """A jump target: ``+N``, ``-N``, ``pc+N``, a label or a local label (``1f``)."""
        tok = self.peek()
        if tok is not None and tok.kind == "local":
            self.pos += 1
            return 0, self.unit.local_reference(tok, self.err)
        if tok is not None and tok.kind == "name" and tok.text != "pc":
            self.pos += 1
            return 0, tok.text
        self.accept("pc")
        col = self.col()
        negative = self.accept("-")
        if not negative:
            self.accept("+")
        tok = self.next()
        if tok.kind != "num":
            raise self.fail(f"expected a jump offset or label, found {_quote(tok.text)}", tok.col)
        try:
            value = -literal(tok.text) if negative else literal(tok.text)
        except ValueError as exc:
            raise self.fail(str(exc), tok.col) from None
        lo, hi = (-(1 << 31), (1 << 31) - 1) if long else (-0x8000, 0x7FFF)
        if not lo <= value <= hi:
            raise self.fail(f"offset {value} out of range [{lo}, {hi}]", col)
        return value, None

    def mem(self) -> tuple[int, int]:
        """``(rN + off)`` -> (register, offset)."""
        self.expect("(")
        reg = self.reg_of("r")
        off = 0 if self.at(")") else self.signed_offset()
        self.expect(")")
        return reg, off

    def signed_offset(self) -> int:
        """``+ expr`` or ``- expr`` after a base register, as a 16-bit offset."""
        col = self.col()
        sign = self.next()
        if sign.text not in ("+", "-"):
            raise self.fail(f"expected '+' or '-', found {_quote(sign.text)}", sign.col)
        value = self.expr()
        off = -value if sign.text == "-" else value
        if not -0x8000 <= off <= 0x7FFF:
            raise self.fail(f"offset {off} out of range [-32768, 32767]", col)
        return off

    def typed_ptr(self) -> tuple[Size, bool]:
        """``(u32 *)`` -> (size, signed)."""
        self.expect("(")
        tok = self.next()
        if tok.text not in _LOAD_TYPES:
            raise self.fail(f"unknown access type {_quote(tok.text)}", tok.col)
        self.expect("*")
        self.expect(")")
        return _LOAD_TYPES[tok.text]

    def width(self, size: Size, col: int, w: str, what: str) -> None:
        """LLVM's rule: 64-bit accesses use rN; narrower ones wN (kernel listings print rN)."""
        want = "r" if size == Size.DW else "w"
        if w != want and not (self.kernel and w == "r"):
            raise self.fail(f"{what} of {size.ctype} takes a {want} register", col)

    # statements
    def instruction(self) -> Instruction:
        tok = self.peek()
        handler = _STATEMENTS.get(tok.text) if tok.kind == "name" else None
        if handler:
            self.pos += 1
            insn = handler(self)
        elif tok.text == "*":
            insn = self.store()
        elif self.is_reg():
            insn = self.assignment()
        else:
            raise self.fail(f"unknown instruction {_quote(tok.text)}")
        self.done()
        return insn

    def make(self, *fields: int, reference: str | None = None) -> Instruction:
        """An Instruction of these fields, flagged if the statement is kernel-internal."""
        try:
            return Instruction(*fields, reference=reference, internal=self.internal)
        except ValueError as exc:
            raise self.fail(str(exc), self.toks[0].col) from None

    def store(self) -> Instruction:
        size, _signed = self.star_ptr()
        dst, off = self.mem()
        self.expect("=")
        if self.is_reg():
            col = self.col()
            src, w = self.reg()
            if w == "w" and size == Size.DW:
                raise self.fail("a store of u64 takes an r register", col)
            return self.make(Class.STX | Mode.MEM | size, dst, src, off)
        return self.make(Class.ST | Mode.MEM | size, dst, 0, off, self.imm32())

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
                return self.make(cls | op.code | SRC_X, dst, self.reg_of(w), op.off)
            return self.make(cls | op.code, dst, 0, op.off, self.imm32())
        if tok.text != "=":
            raise self.fail(f"expected an assignment operator, found {_quote(tok.text)}", tok.col)
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
            return self.make(cls | NEG_OP, dst)
        if self.is_reg():
            return self.make(cls | MOV_OP | SRC_X, dst, self.reg_of(w))
        if tok.text == "(" and self.peek(1) is not None and self.peek(1).text.startswith("s"):
            return self.movsx(dst, w, cls)
        if tok.text == "*":
            return self.load(dst, w)
        if tok.text == "&":
            return self.percpu(dst, w)
        if tok.kind == "name" and tok.text == "map" and self.at_next("["):
            return self.map_by_id(dst, w)
        if tok.kind == "name" and tok.text in _FUNCTIONS:
            self.pos += 1
            return _FUNCTIONS[tok.text](self, dst, w)
        if tok.kind == "name" and tok.text not in self.unit.constants:
            self.pos += 1
            self.expect("ll")
            self.want_r(dst, w)
            return self.make(LD_IMM64, dst, 0, 0, 0, reference=tok.text)
        if self.starts_value():
            col = self.col()
            value = self.expr()
            if self.accept("ll") or self.hint == LD_IMM64:
                if not -(1 << 63) <= value <= _U64:
                    raise self.fail(f"immediate {value} does not fit in 64 bits", col)
                self.want_r(dst, w)
                return self.make(LD_IMM64, dst, 0, 0, isa._s64(value))
            if not -(1 << 31) <= value < (1 << 32):
                raise self.fail(f"immediate {value} needs ld_imm64: append ' ll'", col)
            return self.make(cls | MOV_OP, dst, 0, 0, isa._s32(value))
        raise self.fail(f"unexpected {_quote(tok.text)}")

    def at_next(self, text: str) -> bool:
        tok = self.peek(1)
        return tok is not None and tok.text == text

    def want_r(self, dst: int, w: str) -> None:
        if w != "r":
            raise self.fail(f"ld_imm64 loads a 64-bit register: write r{dst}")

    def movsx(self, dst: int, w: str, cls: int) -> Instruction:
        self.expect("(")
        tok = self.next()
        bits = {"s8": 8, "s16": 16, "s32": 32}.get(tok.text)
        if bits is None or (bits == 32 and w == "w"):
            raise self.fail(f"unknown sign-extension {_quote(tok.text)}", tok.col)
        self.expect(")")
        return self.make(cls | MOV_OP | SRC_X, dst, self.reg_of(w), bits)

    def percpu(self, dst: int, w: str) -> Instruction:
        """``r0 = &(void __percpu *)(r0)``: the kernel's per-CPU address move."""
        for text in ("&", "(", "void", "__percpu", "*", ")", "("):
            self.expect(text)
        src = self.reg_of("r")
        self.expect(")")
        self.want_r(dst, w)
        self.internal = "the per-CPU address move is written by the kernel"
        return self.make(Class.ALU64 | MOV_OP | SRC_X, dst, src, -1)

    def map_by_id(self, dst: int, w: str) -> Instruction:
        """bpftool's ``r1 = map[id:5]`` and ``r1 = map[id:5][0]+16`` (map ids, not fds)."""
        self.pos += 1
        self.expect("[")
        self.expect("id")
        self.expect(":")
        map_id = self.number(0, (1 << 32) - 1, "map id")
        self.expect("]")
        self.want_r(dst, w)
        self.internal = "a map by id, as bpftool prints it; programs load maps by fd"
        if not self.accept("["):
            return self.make(LD_IMM64, dst, PseudoLoad.MAP_FD, 0, map_id)
        self.number(0, 0, "map value index")
        self.expect("]")
        self.expect("+")
        offset = self.number(0, (1 << 32) - 1, "map value offset")
        return self.make(LD_IMM64, dst, PseudoLoad.MAP_VALUE, 0, isa._s64(offset << 32 | map_id))

    def load(self, dst: int, w: str) -> Instruction:
        self.expect("*")
        col = self.col()
        size, signed = self.typed_ptr()
        if self.accept("skb"):
            if dst != 0 or w != "r":
                raise self.fail("legacy packet loads write r0", col)
            if signed or size == Size.DW:
                raise self.fail("legacy packet loads are u8, u16 or u32", col)
            self.expect("[")
            if self.is_reg():
                src = self.reg_of("r")
                imm = self.imm32() if self.accept("+") else 0
                self.expect("]")
                return self.make(Class.LD | Mode.IND | size, 0, src, 0, imm)
            imm = self.imm32()
            self.expect("]")
            return self.make(Class.LD | Mode.ABS | size, 0, 0, 0, imm)
        if w == "w" and (signed or size == Size.DW):
            raise self.fail(f"a load of {'s' if signed else 'u'}{8 * size.nbytes} writes an r register",
                            col)
        src, off = self.mem()
        mode = Mode.MEMSX if signed else Mode.MEM
        return self.make(Class.LDX | mode | size, dst, src, off)

    # atomics and other function-call syntaxes, after "dst ="
    def fetch(self, name: str, dst: int, w: str) -> Instruction:
        op = AtomicOp["FETCH_" + name.rsplit("_", 1)[1].upper()]
        self.expect("(")
        col = self.col()
        size, _ = self.typed_ptr()
        ptr, off = self.mem()
        self.expect(",")
        src_col = self.col()
        src, sw = self.reg()
        self.expect(")")
        if src != dst:
            raise self.fail("atomic fetch returns into its source register", src_col)
        self.width(size, col, w, "atomic fetch")
        self.width(size, src_col, sw, "atomic fetch")
        return self.rmw(size, ptr, off, src, op)

    def rmw(self, size: Size, ptr: int, off: int, src: int, op: AtomicOp) -> Instruction:
        if size not in (Size.W, Size.DW):
            raise self.fail("atomic operations are u32 or u64")
        return self.make(Class.STX | Mode.ATOMIC | size, ptr, src, off, int(op))

    def xchg_llvm(self, name: str, dst: int, w: str) -> Instruction:
        """``r2 = xchg_64(r1 + 8, r2)`` / ``r0 = cmpxchg_64(r1 + 8, r0, r2)``."""
        size = Size.DW if name.endswith("_64") else Size.W
        col = self.col()
        self.expect("(")
        ptr = self.reg_of("r")
        off = 0 if self.at(",") else self.signed_offset()
        self.width(size, col, w, name)
        return self.xchg_tail(name.startswith("cmp"), size, ptr, off, dst, w)

    def xchg_kernel(self, name: str, dst: int, w: str) -> Instruction:
        """``r2 = atomic64_xchg((u64 *)(r1 +8), r2)``, ``atomic_cmpxchg`` likewise."""
        self.expect("(")
        col = self.col()
        size, _ = self.typed_ptr()
        ptr, off = self.mem()
        self.width(size, col, w, name)
        return self.xchg_tail(name.endswith("cmpxchg"), size, ptr, off, dst, w)

    def xchg_tail(self, cmp: bool, size: Size, ptr: int, off: int, dst: int, w: str) -> Instruction:
        if cmp:
            self.expect(",")
            col = self.col()
            if self.reg_of(w) != 0 or dst != 0:
                raise self.fail("cmpxchg compares and returns r0", col)
        self.expect(",")
        col = self.col()
        src = self.reg_of(w)
        self.expect(")")
        if not cmp and src != dst:
            raise self.fail("xchg returns into its source register", col)
        return self.rmw(size, ptr, off, src, AtomicOp.CMPXCHG if cmp else AtomicOp.XCHG)

    def load_acquire(self, name: str, dst: int, w: str) -> Instruction:
        self.expect("(")
        col = self.col()
        size, _ = self.typed_ptr()
        src, off = self.mem()
        self.expect(")")
        self.width(size, col, w, "load_acquire")
        return self.make(Class.STX | Mode.ATOMIC | size, dst, src, off, AtomicOp.LOAD_ACQ)

    def endian(self, name: str, dst: int, w: str) -> Instruction:
        col = self.col()
        n, sw = self.reg()
        if n != dst:
            raise self.fail("byte swaps are in place (rN = be16 rN)", col)
        if w != "r" or sw != "r":
            raise self.fail(f"byte swaps work on r registers: write r{dst} = {name} r{dst}", col)
        kind, bits = _ENDIAN.match(name).groups()
        bits = int(bits)
        if kind == "bswap":
            return self.make(Class.ALU64 | END_OP, dst, 0, 0, bits)
        return self.make(Class.ALU | END_OP | (SRC_X if kind == "be" else 0), dst, 0, 0, bits)

    def addr_space_cast(self, name: str, dst: int, w: str) -> Instruction:
        self.expect("(")
        src = self.reg_of("r")
        self.expect(",")
        dst_as = self.number(0, 0xFFFF, "address space")
        self.expect(",")
        src_as = self.number(0, 0xFFFF, "address space")
        self.expect(")")
        self.want_r(dst, w)
        return self.make(Class.ALU64 | MOV_OP | SRC_X, dst, src, ADDR_SPACE_CAST,
                         isa._s32(dst_as << 16 | src_as))


def _st_exit(p: _LineParser) -> Instruction:
    return p.make(EXIT)


def _st_call(p: _LineParser) -> Instruction:
    tok = p.peek()
    if tok is None:
        raise p.fail("expected a helper id, 'pc+N', 'kfunc#ID', 'name#ID' or a label")
    if tok.text == "kfunc" and p.at_next("#"):
        p.pos += 2
        btf_id = p.imm32()
        off = p.offset16() if p.accept(",") else 0
        return p.make(CALL, 0, PseudoCall.KFUNC, off, btf_id)
    if tok.text == "pc":
        p.pos += 1
        return p.make(CALL, 0, PseudoCall.CALL, 0, p.imm32())  # bpftool's '#bpf_prog_..' is a comment
    if tok.text == "kernel" and p.at_next("-"):  # kernel printout of an unnamed kfunc
        p.pos += 2
        p.expect("function")
        p.expect("#")
        return p.make(CALL, 0, PseudoCall.KFUNC, 0, p.imm32())
    if tok.kind == "name" and tok.text not in p.unit.constants:
        p.pos += 1
        if p.accept("#"):  # kernel printout: call bpf_map_lookup_elem#1, call bpf_obj_new_impl#123
            return _named_call(p, tok)
        return p.make(CALL, 0, PseudoCall.CALL, 0, -1, reference=tok.text)
    return p.make(CALL, 0, PseudoCall.HELPER, 0, p.imm32())


def _named_call(p: _LineParser, name: Token) -> Instruction:
    """``call NAME#ID``: a helper if NAME is one (and ID must be its id), else a kfunc by BTF id.

    An id beyond every helper's is a call the kernel has rewritten to an
    address (bpftool's xlated dumps): read, but not loadable.
    """
    col = p.col()
    ident = p.imm32()
    helper = _HELPER_IDS.get(name.text)
    if name.text == "unknown" or helper == ident:
        return p.make(CALL, 0, PseudoCall.HELPER, 0, ident)
    if helper is None:
        return p.make(CALL, 0, PseudoCall.KFUNC, 0, ident)
    if 0 <= ident < len(HELPER_NAMES):
        raise p.fail(f"{name.text} is helper {helper}, not {ident}", col)
    p.internal = "a call the kernel rewrote to an address (xlated form)"
    return p.make(CALL, 0, PseudoCall.HELPER, 0, ident)


def _st_jump(opcode: int, *, long: bool = False):
    def parse(p: _LineParser) -> Instruction:
        offset, ref = p.target(long=long)
        if long:
            return p.make(opcode, 0, 0, 0, offset, reference=ref)
        return p.make(opcode, 0, 0, offset, 0, reference=ref)
    return parse


def _st_indirect(opcode: int):
    def parse(p: _LineParser) -> Instruction:
        return p.make(opcode, p.reg_of("r"))
    return parse


def _st_if(p: _LineParser) -> Instruction:
    dst, w = p.reg()
    tok = p.next()
    op = _JUMP_BY_SYMBOL.get(tok.text) if tok.kind == "op" else None
    if op is None:
        raise p.fail(f"unknown comparison {_quote(tok.text)}", tok.col)
    cls = Class.JMP32 if w == "w" else Class.JMP
    if p.is_reg():
        src, imm, opcode = p.reg_of(w), 0, cls | op.code | SRC_X
    else:
        src, imm, opcode = 0, p.imm32(), cls | op.code
    p.expect("goto")
    offset, ref = p.target()
    return p.make(opcode, dst, src, offset, imm, reference=ref)


def _st_lock(p: _LineParser) -> Instruction:
    size, _ = p.star_ptr()
    ptr, off = p.mem()
    tok = p.next()
    op = _ATOMIC_BY_SYMBOL.get(tok.text) if tok.kind == "op" else None
    if op is None:
        raise p.fail(f"unknown atomic operator {_quote(tok.text)}", tok.col)
    col = p.col()
    src, w = p.reg()
    if w == "w" and size == Size.DW:
        raise p.fail("an atomic operation on u64 takes an r register", col)
    return p.rmw(size, ptr, off, src, op)


def _st_store_release(p: _LineParser) -> Instruction:
    p.expect("(")
    size, _ = p.typed_ptr()
    dst, off = p.mem()
    p.expect(",")
    col = p.col()
    src, w = p.reg()
    p.expect(")")
    p.width(size, col, w, "store_release")
    return p.make(Class.STX | Mode.ATOMIC | size, dst, src, off, AtomicOp.STORE_REL)


def _st_ld_pseudo(p: _LineParser) -> Instruction:
    dst = p.reg_of("r")
    p.expect(",")
    src = p.number(1, max(PseudoLoad), "pseudo source")
    p.expect(",")
    tok = p.peek()
    ref = None
    if tok is not None and tok.kind == "name" and tok.text not in p.unit.constants:
        p.pos += 1
        ref, lo = tok.text, 0
    else:
        lo = p.imm32()
    hi = p.imm32() if p.accept(",") else 0
    return p.make(LD_IMM64, dst, src, 0, isa._s64((hi << 32) | (lo & 0xFFFF_FFFF)),
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


@dataclass(frozen=True)
class MapDirective:
    """``.map NAME, type=hash, key=4, value=8, max_entries=16``: a map an object file defines.

    Values are numbers, except ``type``, which may be a map type's name.
    """

    name: str
    fields: Mapping[str, int | str]
    source: SourceLocation


@dataclass(frozen=True)
class AsmUnit:
    """A parsed source file as an object file sees it."""

    instructions: list[Instruction]
    #: (section name, index of its first instruction), in order; a name may come back
    sections: list[tuple[str, int]]
    #: labels named by ``.globl``
    globals: frozenset[str]
    maps: list[MapDirective]
    #: the string of the ``license`` section (``.asciz "GPL"``)
    license: str | None


class _Unit:
    """The state of one parse: instructions, labels, constants, local labels, raw slots."""

    def __init__(self, filename: str, byteorder: str) -> None:
        self.filename, self.byteorder = filename, byteorder
        self.section = ".text"
        self.sections: list[tuple[str, int]] = []
        self.globals: set[str] = set()
        self.maps: list[MapDirective] = []
        self.license: str | None = None
        self.insns: list[Instruction] = []
        self.pending: list[tuple[str, int, int]] = []  # labels waiting for an instruction
        self.aliases: dict[str, str] = {}  # extra labels on one instruction -> its symbol
        self.seen: dict[str, int] = {}
        self.constants: dict[str, int] = {}  # .equ / .set
        self.locals: dict[str, int] = {}  # local label number -> definitions so far
        self.forward: list[tuple[str, int, AsmSyntaxError]] = []  # 1f references to check
        self.raw: tuple[bytes, SourceLocation] | None = None  # first slot of a raw ld_imm64

    # labels
    def define(self, tok: Token, lineno: int, err) -> None:
        if tok.kind == "num":
            if not tok.text.isdigit() or len(tok.text) > 9:
                raise err(tok.col, f"{_quote(tok.text)} is not a local label (digits only)")
            k = self.locals.get(tok.text, 0)
            self.locals[tok.text] = k + 1
            self.pending.append((f"{tok.text}:{k}", lineno, tok.col))
            return
        name = tok.text
        if _REG.match(name):
            raise err(tok.col, f"{_quote(name)} is a register, not a label")
        if name in self.seen:
            raise err(tok.col, f"label {_quote(name)} already defined on line {self.seen[name]}")
        self.seen[name] = lineno
        self.pending.append((name, lineno, tok.col))

    def local_reference(self, tok: Token, err) -> str:
        """The label ``1b`` (the last ``1:``) or ``1f`` (the next ``1:``) refers to."""
        number, direction = _LOCAL_REF.match(tok.text).groups()
        if len(number) > 9:
            raise err(tok.col, f"{_quote(tok.text)} is not a local label reference")
        count = self.locals.get(number, 0)
        if direction == "b":
            if not count:
                raise err(tok.col, f"no local label '{number}:' before {_quote(tok.text)}")
            return f"{number}:{count - 1}"
        self.forward.append((number, count, err(tok.col, f"no local label '{number}:' after {_quote(tok.text)}")))
        return f"{number}:{count}"

    def add(self, insn: Instruction, source: SourceLocation) -> None:
        symbol = None
        if self.pending:
            symbol = self.pending[0][0]
            for name, _, _ in self.pending[1:]:
                self.aliases[name] = symbol
            self.pending.clear()
        self.insns.append(replace(insn, symbol=symbol, source=source))

    # directives
    def directive(self, toks: list[Token], lineno: int, err, end_col: int) -> None:
        name = toks[0].text
        if name in _IGNORED_DIRECTIVES:
            return
        if name in (".text", ".section"):
            self.switch(".text" if name == ".text" else _section_name(toks, err), lineno, err)
            return
        p = _LineParser(toks[1:], end_col, err, None, self, kernel=False)
        if name in (".globl", ".global"):
            tok = p.next()
            if tok.kind != "name":
                raise err(tok.col, f"{name} wants a symbol name, found {_quote(tok.text)}")
            self.globals.add(tok.text)
            p.done()
            return
        if name == ".map":
            self.map_directive(p, lineno, toks[0].col)
            return
        if name in (".asciz", ".string"):
            tok = p.next()
            if self.section != LICENSE_SECTION or tok.kind != "str":
                raise err(toks[0].col, f"{name} holds the license string, in section "
                                       f"'{LICENSE_SECTION}'")
            p.done()
            self.license = _string_value(tok.text)
            self.pending.clear()  # the _license label names data, not an instruction
            return
        if name in (".equ", ".set"):
            tok = p.next()
            if tok.kind != "name" or _REG.match(tok.text):
                raise err(tok.col, f"{name} wants a constant name, found {_quote(tok.text)}")
            p.expect(",")
            self.constants[tok.text] = p.expr()
            p.done()
            return
        if name in (".8byte", ".quad"):
            while True:
                col = p.col()
                self.raw_slot(p.expr(), SourceLocation(self.filename, lineno, col + 1), err, col)
                if not p.accept(","):
                    break
            p.done()
            return
        raise err(toks[0].col, f"unsupported directive {_quote(name)}")

    def switch(self, name: str, lineno: int, err) -> None:
        if self.pending:
            raise err(0, f"label {_quote(self.pending[0][0])} names no instruction of its section")
        self.section = name
        self.sections.append((name, len(self.insns)))

    def map_directive(self, p: _LineParser, lineno: int, col: int) -> None:
        tok = p.next()
        if tok.kind != "name" or _REG.match(tok.text):
            raise p.fail(f".map wants a map name, found {_quote(tok.text)}", tok.col)
        fields: dict[str, int | str] = {}
        while p.accept(","):
            key = p.next()
            if key.kind != "name" or key.text in fields:
                raise p.fail(f"expected a new field name, found {_quote(key.text)}", key.col)
            p.expect("=")
            value = p.peek()
            if key.text == "type" and value is not None and value.kind == "name" \
                    and value.text not in self.constants:
                p.pos += 1
                fields[key.text] = value.text
            else:
                fields[key.text] = p.number(0, (1 << 32) - 1, key.text)
        p.done()
        if any(m.name == tok.text for m in self.maps):
            raise p.fail(f"map {_quote(tok.text)} defined twice", tok.col)
        self.maps.append(MapDirective(tok.text, fields, SourceLocation(self.filename, lineno, col + 1)))

    def raw_slot(self, value: int, source: SourceLocation, err, col: int) -> None:
        """One 8-byte slot given as a number (``.8byte``), in the target's byte order."""
        slot = (value & _U64).to_bytes(8, self.byteorder)
        if self.raw is None and slot[0] == LD_IMM64:
            self.raw = (slot, source)
            return
        data = slot if self.raw is None else self.raw[0] + slot
        where = source if self.raw is None else self.raw[1]
        self.raw = None
        try:
            (insn,) = isa.decode(data, self.byteorder)
        except isa.DecodeError as exc:
            raise err(col, f"not an instruction: {str(exc).split(': ', 1)[1]}") from None
        self.add(insn, where)

    def finish(self) -> AsmUnit:
        if self.raw is not None:
            src = self.raw[1]
            raise AsmSyntaxError(self.filename, src.line, src.col, "ld_imm64 is missing its second slot")
        if self.pending:
            name, lineno, col = self.pending[0]
            raise AsmSyntaxError(self.filename, lineno, col + 1, f"label {name.split(':')[0]!r} "
                                                                 "names no instruction")
        for number, k, error in self.forward:
            if self.locals.get(number, 0) <= k:
                raise error
        insns = self.insns
        if self.aliases:
            insns = [replace(i, reference=self.aliases.get(i.reference, i.reference))
                     if i.reference else i for i in insns]
        sections = self.sections if self.sections and self.sections[0][1] == 0 else \
            [(".text", 0), *self.sections]
        return AsmUnit(insns, sections, frozenset(self.globals), self.maps, self.license)


def _section_name(toks: list[Token], err) -> str:
    """The name of ``.section NAME[,flags...]``: its adjoining tokens (``tracepoint/sched/x``)."""
    if len(toks) < 2:
        raise err(toks[0].col, ".section wants a name")
    first = toks[1]
    if first.kind == "str":
        return _string_value(first.text)
    name, end = first.text, first.col + len(first.text)
    for tok in toks[2:]:
        if tok.col != end or tok.text == ",":
            break
        name, end = name + tok.text, end + len(tok.text)
    return name


def _string_value(text: str) -> str:
    """The value of a string literal (``"GPL"``), escapes as in C's simple ones."""
    return re.sub(r"\\(.)", lambda m: _CHAR_ESCAPES.get(m.group(1), m.group(1)), text[1:-1])


def parse(text: str, filename: str = "<input>", byteorder: str = "little") -> list[Instruction]:
    """Parse assembler text into instructions (every section's, in order: see :func:`parse_unit`).

    Accepts LLVM's syntax (``;`` separates statements), the kernel verifier's
    printout (``N: (op) text ; state`` - there ``;`` starts the state comment),
    bpftool's xlated dumps and llvm-objdump listings.  Labels (``name:``,
    local ``1:``) become the ``symbol`` of the next instruction; every
    instruction's ``source`` is its file, line and column.  *byteorder* is the
    target's, for raw ``.8byte`` slots.  Raises :class:`AsmSyntaxError`
    (``file:line:col: message``) on bad input.
    """
    return parse_unit(text, filename, byteorder).instructions


def parse_unit(text: str, filename: str = "<input>", byteorder: str = "little") -> AsmUnit:
    """Parse a source file with what an object file needs besides the instructions:
    sections (``.section xdp``), ``.globl`` names, ``.map`` definitions, the license."""
    unit = _Unit(filename, byteorder)
    text = _strip_block_comments(text, filename)
    verifier_input = any(_KERNEL_PREFIX.match(line) for line in text.splitlines())
    for lineno, line in enumerate(text.splitlines(), 1):
        def err(col: int, message: str, lineno: int = lineno) -> AsmSyntaxError:
            return AsmSyntaxError(filename, lineno, col + 1, message)

        if _OBJDUMP_NOISE.match(line):
            continue
        symbol_line = _OBJDUMP_SYMBOL.match(line) or (verifier_input and _XLATED_FUNC.match(line))
        if symbol_line:  # llvm-objdump "0000000000000000 <func>:", bpftool "long func():"
            line = f"{symbol_line.group(1)}:"
        reloc = _OBJDUMP_RELOC.match(line)
        if reloc:  # llvm-objdump -r: the symbol the previous instruction refers to
            _apply_relocation(unit, reloc.group(1), err(reloc.start(1), "a relocation must follow "
                                                        "an ld_imm64 or a call"))
            continue
        raw = _OPCODE_BYTES.match(line) if verifier_input else None
        if raw:
            _apply_bytes(unit, bytes.fromhex(raw.group(1)), err(raw.start(1), "bytes must follow "
                                                               "the instruction they encode"))
            continue
        if verifier_input and line.lstrip().startswith(";"):
            continue  # source-line annotation of a verifier log or xlated dump
        start, hint, verifier = 0, None, False
        m = _KERNEL_PREFIX.match(line) or _OBJDUMP_PREFIX.match(line)
        if m:
            start = m.end()
            if m.re is _KERNEL_PREFIX:
                hint, verifier = int(m.group(2), 16), True
        listing = m is not None or _LISTING_PREFIX.match(line) is not None
        if listing:
            target = _OBJDUMP_TARGET.search(line)
            if target:
                line = line[:target.start()]
        tokens = _tokenize(line, start, err, verifier=verifier)
        for k, stmt in enumerate(_statements(tokens)):
            _statement(unit, stmt, lineno, err, len(line), hint if k == 0 else None,
                       kernel=listing)
    return unit.finish()


def _statement(unit: _Unit, toks: list[Token], lineno: int, err, end_col: int,
               hint: int | None, *, kernel: bool) -> None:
    while len(toks) >= 2 and toks[1].text == ":" and toks[0].kind in ("name", "num"):
        unit.define(toks[0], lineno, err)
        toks = toks[2:]
    if not toks:
        return
    if toks[0].kind == "name" and toks[0].text.startswith("."):
        unit.directive(toks, lineno, err, end_col)
        return
    if unit.raw is not None:
        raise err(toks[0].col, "ld_imm64 is missing its second slot")
    parser = _LineParser(toks, end_col, err, hint, unit, kernel=kernel)
    insn = parser.instruction()
    if hint is not None and insn.opcode != hint:
        raise err(toks[0].col, f"instruction text does not match its opcode ({hint:02x}), "
                               f"it encodes as {insn.opcode:02x}")
    unit.add(insn, SourceLocation(unit.filename, lineno, toks[0].col + 1))


def _apply_relocation(unit: _Unit, symbol: str, error: AsmSyntaxError) -> None:
    """Point the last instruction at *symbol*, as an object file's relocation does."""
    last = unit.insns[-1] if unit.insns else None
    if last is None or not (last.opcode == LD_IMM64 or last.is_call):
        raise error
    if last.is_call:
        unit.insns[-1] = replace(last, src=PseudoCall.CALL, imm=-1, reference=symbol)
    else:
        unit.insns[-1] = replace(last, reference=symbol)


def _apply_bytes(unit: _Unit, data: bytes, error: AsmSyntaxError) -> None:
    """bpftool's bytes under an instruction are the truth: where the kernel's text is
    ambiguous (a rewritten call prints like a kfunc call) they decide, and an
    instruction they change is flagged as kernel-rewritten."""
    last = unit.insns[-1] if unit.insns else None
    if last is None or len(data) != 8 * last.slots:
        raise error
    opcode, regs, off, imm = struct.unpack_from("<BBhi" if unit.byteorder == "little" else ">BBhi", data)
    dst, src = (regs & 0xF, regs >> 4) if unit.byteorder == "little" else (regs >> 4, regs & 0xF)
    if last.slots == 2:
        imm = int.from_bytes(data[12:16], unit.byteorder, signed=True) << 32 | (imm & 0xFFFF_FFFF)
    fields = dict(opcode=opcode, dst=dst, src=src, off=off, imm=imm)
    if all(getattr(last, k) == v for k, v in fields.items()):
        return
    internal = last.internal or "an instruction the kernel rewrote (xlated form)"
    unit.insns[-1] = replace(last, **fields, internal=internal)
