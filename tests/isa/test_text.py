"""The text syntax: LLVM forms, the kernel verifier's printout, objdump listings, errors."""

from __future__ import annotations

import pytest

from pybpfasm import isa
from pybpfasm.isa import encode
from pybpfasm.text import AsmSyntaxError, format_instruction, parse


def one(line: str) -> isa.Instruction:
    (insn,) = parse(line)
    return insn


# Lines in the kernel's own format (kernel/bpf/disasm.c), with the bytes they denote.
KERNEL_LINES = [
    ("0: (b7) r0 = 0", "b700000000000000"),
    ("1: (b4) w1 = -1", "b4010000ffffffff"),
    ("2: (25) if r1 > 0x3 goto pc+2", "2501020003000000"),
    ("3: (a6) if w1 < 0xffffffff goto pc-3", "a601fdffffffffff"),
    ("4: (85) call bpf_map_lookup_elem#1", "8500000001000000"),
    ("5: (85) call pc+5", "8510000005000000"),
    ("6: (61) r0 = *(u32 *)(r1 +4)", "6110040000000000"),
    ("7: (63) *(u32 *)(r10 -4) = r1", "631afcff00000000"),
    ("8: (7a) *(u64 *)(r10 -8) = 0", "7a0af8ff00000000"),
    ("9: (db) lock *(u64 *)(r1 +8) += r2", "db21080000000000"),
    ("10: (c3) r2 = atomic_fetch_add((u32 *)(r1 +8), r2)", "c321080001000000"),
    ("11: (db) r0 = atomic64_cmpxchg((u64 *)(r1 +8), r0, r2)", "db210800f1000000"),
    ("12: (db) r2 = atomic64_xchg((u64 *)(r1 +8), r2)", "db210800e1000000"),
    ("13: (d3) r0 = load_acquire((u8 *)(r1 +0))", "d310000000010000"),
    ("14: (db) store_release((u64 *)(r1 +0), r2)", "db21000010010000"),
    ("15: (dc) r1 = be16 r1", "dc01000010000000"),
    ("16: (d7) r1 = bswap32 r1", "d701000020000000"),
    ("17: (bf) r1 = (s8)r2", "bf21080000000000"),
    ("18: (3f) r1 s/= r2", "3f21010000000000"),
    ("19: (30) r0 = *(u8 *)skb[4]", "3000000004000000"),
    ("20: (48) r0 = *(u16 *)skb[r1 + 0]", "4810000000000000"),
    ("21: (e5) may_goto pc+1", "e500010000000000"),
    ("22: (06) gotol pc-5", "06000000fbffffff"),
    ("23: (05) goto pc-1", "0500ffff00000000"),
    ("24: (87) r1 = -r1", "8701000000000000"),
    ("25: (18) r1 = 0x123456789", "1801000089674523 0000000001000000"),
    ("26: (95) exit", "9500000000000000"),
    ("27: (bf) r6 = r1                      ; R1=ctx() R6_w=ctx()", "bf16000000000000"),
]


@pytest.mark.parametrize("line,hexbytes", KERNEL_LINES)
def test_kernel_printout(line: str, hexbytes: str) -> None:
    assert encode(parse(line)) == bytes.fromhex(hexbytes.replace(" ", ""))


def test_kernel_opcode_must_match_text() -> None:
    with pytest.raises(AsmSyntaxError, match="does not match its opcode"):
        parse("0: (b4) r0 = 0")


def test_objdump_listing() -> None:
    listing = """
0000000000000000 <prog>:
       0:	b7 00 00 00 01 00 00 00	r0 = 0x1
       1:	18 01 00 00 02 00 00 00 00 00 00 00 00 00 00 00	r1 = 0x2 ll
       1:	18 01 00 00 02 00 00 00	r1 = 0x2 ll
       3:	00 00 00 00 00 00 00 00
       4:	95 00 00 00 00 00 00 00	exit
"""
    insns = parse(listing)
    assert insns[0].symbol == "prog"
    assert [format_instruction(i) for i in insns] == ["r0 = 1", "r1 = 0x2 ll", "r1 = 0x2 ll", "exit"]


def test_comments_blank_lines_and_directives() -> None:
    insns = parse("""
        .text
        .globl prog
    prog:  # the entry point
        r0 = 0   // zero
        // a whole-line comment
        exit     # done
    """)
    assert [format_instruction(i) for i in insns] == ["r0 = 0", "exit"]
    assert insns[0].symbol == "prog"


def test_source_locations() -> None:
    insns = parse("\n  r0 = 1\nexit\n", "prog.s")
    assert [str(i.source) for i in insns] == ["prog.s:2:3", "prog.s:3:1"]


def test_two_labels_on_one_instruction() -> None:
    insns = parse("a:\nb:\n  goto b\n")
    assert insns[0].symbol == "a" and insns[0].reference == "a"


@pytest.mark.parametrize("text,where,message", [
    ("r0 = 1\nr11 = 1", "2:1", "expected a register"),
    ("r1 += w2", "1:7", "operand widths must match"),
    ("r0 = 1 2", "1:8", "unexpected '2'"),
    ("if r1 >> 3 goto +1", "1:7", "unknown comparison"),
    ("r0 = *(u128 *)(r1 + 0)", "1:8", "unknown access type"),
    ("*(u32 *)(r1 + 70000) = r2", "1:13", "offset 70000 out of range"),
    ("r0 = 0x100000000", "1:6", "needs ld_imm64"),
    ("w0 = 1 ll", "1:10", "ld_imm64 loads a 64-bit register"),
    ("frobnicate r0", "1:1", "unknown instruction 'frobnicate'"),
    ("r0 = ?", "1:6", "unexpected character '?'"),
    ("lock *(u8 *)(r1 + 0) += r2", "1:27", "atomic operations are u32 or u64"),
    ("x:\nx:\nexit", "2:1", "label 'x' already defined on line 1"),
    ("exit\nend:", "2:1", "label 'end' names no instruction"),
    (".weak foo", "1:1", "unsupported directive"),
    ("r1 = be16 r2", "1:11", "byte swaps are in place"),
])
def test_syntax_errors(text: str, where: str, message: str) -> None:
    with pytest.raises(AsmSyntaxError) as info:
        parse(text, "bad.s")
    assert str(info.value).startswith(f"bad.s:{where}: "), str(info.value)
    assert message in str(info.value)


def test_llvm_spellings_accepted() -> None:
    """Alternative spellings LLVM accepts map to the same encoding as ours."""
    assert one("w0 = *(u32 *)(r1 + 4)") == one("r0 = *(u32 *)(r1 + 4)")
    assert one("*(u32 *)(r1 + 4) = w2") == one("*(u32 *)(r1 + 4) = r2")
    assert one("r1 = -1 ll") == one("r1 = 0xffffffffffffffff ll")
    assert one("r0 = 4294967295") == one("r0 = -1")
    assert one("goto +0x10") == isa.ja(16)
