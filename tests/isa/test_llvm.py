"""Differential tests: our encoder against LLVM's assembler, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfasm import isa
from pybpfasm.asm import assemble
from pybpfasm.isa import AluOp, AtomicOp, JumpOp, PseudoLoad, Size, encode
from pybpfasm.text import format_instruction, parse

pytest.importorskip("ziglang", reason="the LLVM oracle (ziglang wheel) comes with the test extra")

from .llvm import llvm_assemble
from .strategies import extended, llvm_instructions

pytestmark = pytest.mark.oracle


def catalogue() -> list[isa.Instruction]:
    """Every instruction form LLVM can spell, once each, with edge values."""
    out = []
    for op in (op for op in AluOp if op.is_binary):
        out += [op.imm(1, -0x80000000), op.reg(2, 10), op.imm32(3, 0x7FFFFFFF), op.reg32(4, 5)]
    out += [isa.neg(1), isa.neg(2, alu32=True), isa.addr_space_cast(1, 2, 1, 0)]
    out += [isa.movsx(1, 2, b) for b in (8, 16, 32)] + [isa.movsx(3, 4, b, alu32=True) for b in (8, 16)]
    for bits in (16, 32, 64):
        out += [isa.to_be(5, bits), isa.to_le(6, bits), isa.bswap(7, bits)]
    for jop in (op for op in JumpOp if op.is_conditional):
        out += [jop.imm(1, -1, 0x7FFF), jop.reg(2, 3, -0x8000), jop.imm32(4, 5, 1), jop.reg32(6, 7, -1)]
    out += [isa.ja(3), isa.gotol(-0x8000), isa.may_goto(7), isa.call(0x7FFFFFFF),
            isa.callx(3), isa.gotox(4), isa.exit_()]
    out += [isa.ld_imm64(9, -(1 << 63)), isa.ld_imm64(0, 0xFFFFFFFF)]
    out += [isa.ld_imm64(1, 3, src) for src in list(PseudoLoad)[1:]]
    for size in Size:
        out += [isa.load_mem(1, 10, -8, size), isa.store_mem(10, 0x7FFF, 2, size),
                isa.store_imm(10, -0x8000, -1, size), isa.load_acquire(3, 4, 16, size),
                isa.store_release(5, -16, 6, size)]
        if size != Size.DW:
            out += [isa.load_memsx(7, 8, 2, size), isa.ld_abs(0x7FFFFFFF, size), isa.ld_ind(9, 0, size)]
    for op in AtomicOp:
        if op < AtomicOp.LOAD_ACQ:
            out += [isa.atomic(op, 1, 8, 2, Size.DW), isa.atomic(op, 3, -8, 4, Size.W)]
    return out


def assert_matches_llvm(insns: list[isa.Instruction], byteorder: str = "little") -> None:
    texts = [format_instruction(i) for i in insns]
    for insn, text, theirs in zip(insns, texts, llvm_assemble(texts, byteorder)):
        assert isinstance(theirs, bytes), f"LLVM rejects our text {text!r}: {theirs}"
        assert encode([insn], byteorder).hex() == theirs.hex(), f"{text!r}: ours vs LLVM"


def test_catalogue_covers_every_opcode() -> None:
    """The catalogue names every opcode byte our decoder accepts."""
    seen = {i.opcode for i in catalogue()}
    valid = set()
    for op in range(256):
        for src in range(3):
            for imm, off in ((0, 0), (16, 0), (1, 0), (0, 8), (0, 1), (0x100, 0)):
                if isa.check_fields(op, 0, src, off, imm) is None:
                    valid.add(op)
    assert valid == seen, f"missing {sorted(hex(v) for v in valid - seen)}"


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_every_form_matches_llvm(byteorder: str) -> None:
    assert_matches_llvm(catalogue(), byteorder)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(llvm_instructions, min_size=1, max_size=80))
def test_generated_instructions_match_llvm(insns: list[isa.Instruction]) -> None:
    assert_matches_llvm(insns)


def test_labels_resolve_like_llvm() -> None:
    text = """
        if r1 > 3 goto LBB0_2
        r0 = 1
        may_goto LBB0_2
    LBB0_2:
        gotol LBB0_0
        if w2 != w3 goto LBB0_2
    LBB0_0:
        goto LBB0_2
        exit
    """
    ours = encode(assemble(parse(text)))
    lines = [line.strip() for line in text.strip().splitlines()]
    theirs = llvm_assemble(["\n".join(lines)])[0]
    assert ours.hex() == theirs.hex()


@settings(max_examples=25, deadline=None)
@given(st.lists(extended(), min_size=1, max_size=10))
def test_extensions_are_ours_alone(insns: list[isa.Instruction]) -> None:
    """Forms LLVM cannot spell: LLVM must reject our text or read it as something else.

    * ``call pc+N`` (bpf-to-bpf by offset): LLVM only calls symbols and leaves a relocation.
    * ``call kfunc#ID``: LLVM only calls kfuncs by symbol (relocation).
    * ``r0 = *(u32 *)skb[rN + K]``: LLVM's ld_ind has no immediate operand.
    * ``ld_pseudo rN, SRC, IMM, HI``: LLVM's ld_pseudo has no second-slot operand.
    * ``gotol +N`` beyond 16 bits: LLVM parses numeric gotol targets as 16-bit (labels reach
      32 bits, see test_labels_resolve_like_llvm).
    """
    for insn, theirs in zip(insns, llvm_assemble([format_instruction(i) for i in insns])):
        assert not isinstance(theirs, bytes) or theirs != encode([insn])


def test_llvm_symbol_calls_leave_relocations() -> None:
    """Why bpf-to-bpf calls are not compared byte for byte: LLVM emits imm 0 plus a
    relocation, and libbpf writes the offset at load time; we resolve it at assembly."""
    theirs = llvm_assemble(["call f\nf:\nexit"])[0]
    assert theirs[:8].hex() == "8510000000000000"
    ours = encode(assemble(parse("call f\nf:\nexit")))
    assert ours[:8].hex() == "85100000" + "00000000"  # offset 0: f is the next instruction


def test_long_jumps_match_llvm_gotol() -> None:
    """Beyond 16 bits, ``goto`` relaxes to ``gotol`` and a conditional jump to the
    inverted condition over a ``gotol``; LLVM assembles the same expansion by label."""
    pad = ["r0 = 0"] * 40000
    ours = assemble(parse("\n".join(["goto far", "if r1 > 3 goto far", "if r1 & 4 goto far",
                                      *pad, "far:", "exit"])), long_jumps=True)
    llvm_text = ["gotol far", "if r1 <= 3 goto +1", "gotol far",
                 "if r1 & 4 goto +1", "goto +1", "gotol far", *pad, "far:", "exit"]
    theirs = llvm_assemble(["\n".join(llvm_text)])[0]
    assert encode(ours) == theirs


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(llvm_instructions, st.sampled_from([";", "; ", " ;", ";;", " ; ;"])),
                min_size=1, max_size=40),
       st.sampled_from(["little", "big"]))
def test_statements_joined_by_semicolons_match_llvm(pairs, byteorder: str) -> None:
    """Inline asm joins statements into one line with ';': clang and we read the same program."""
    line = "".join(format_instruction(insn) + sep for insn, sep in pairs)
    theirs = llvm_assemble([line], byteorder)[0]
    assert isinstance(theirs, bytes), f"LLVM rejects {line!r}: {theirs}"
    assert encode(parse(line), byteorder).hex() == theirs.hex(), line
    assert len(parse(line)) == len(pairs)
