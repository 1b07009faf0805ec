"""Hypothesis strategies for every instruction form, biased to edge values."""

from __future__ import annotations

from hypothesis import strategies as st

from pybpfasm import isa
from pybpfasm.isa import AluOp, AtomicOp, Instruction, JumpOp, PseudoLoad, Size

regs = st.integers(0, 10)
off16 = st.one_of(st.sampled_from([0, 1, -1, 0x7FFF, -0x8000]), st.integers(-0x8000, 0x7FFF))
imm32 = st.one_of(st.sampled_from([0, 1, -1, 0x7FFFFFFF, -0x80000000]),
                  st.integers(-(1 << 31), (1 << 31) - 1))
imm64 = st.one_of(st.sampled_from([0, -1, 1 << 32, (1 << 63) - 1, -(1 << 63), 0xFFFFFFFF]),
                  st.integers(-(1 << 63), (1 << 63) - 1))
sizes = st.sampled_from(list(Size))
binary_ops = st.sampled_from([op for op in AluOp if op.is_binary])
jump_ops = st.sampled_from([op for op in JumpOp if op.is_conditional])


@st.composite
def alu(draw) -> Instruction:
    op, wide = draw(binary_ops), draw(st.booleans())
    if draw(st.booleans()):
        return (op.imm if wide else op.imm32)(draw(regs), draw(imm32))
    return (op.reg if wide else op.reg32)(draw(regs), draw(regs))


@st.composite
def alu_special(draw) -> Instruction:
    d = draw(regs)
    kind = draw(st.sampled_from(["neg", "movsx", "be", "le", "bswap", "cast"]))
    if kind == "neg":
        return isa.neg(d, alu32=draw(st.booleans()))
    if kind == "movsx":
        alu32 = draw(st.booleans())
        return isa.movsx(d, draw(regs), draw(st.sampled_from([8, 16] if alu32 else [8, 16, 32])),
                         alu32=alu32)
    if kind == "cast":
        return isa.addr_space_cast(d, draw(regs), draw(st.integers(0, 0xFFFF)),
                                   draw(st.integers(0, 0xFFFF)))
    ctor = {"be": isa.to_be, "le": isa.to_le, "bswap": isa.bswap}[kind]
    return ctor(d, draw(st.sampled_from([16, 32, 64])))


@st.composite
def jumps(draw) -> Instruction:
    kind = draw(st.sampled_from(["cond", "ja", "gotol", "may_goto"]))
    if kind == "ja":
        return isa.ja(draw(off16))
    if kind == "gotol":  # LLVM spells numeric gotol targets in 16 bits only: see extended()
        return isa.gotol(draw(off16))
    if kind == "may_goto":
        return isa.may_goto(draw(off16))
    op, wide, target = draw(jump_ops), draw(st.booleans()), draw(off16)
    if draw(st.booleans()):
        return (op.imm if wide else op.imm32)(draw(regs), draw(imm32), target)
    return (op.reg if wide else op.reg32)(draw(regs), draw(regs), target)


@st.composite
def calls(draw) -> Instruction:
    kind = draw(st.sampled_from(["helper", "exit", "callx", "gotox"]))
    if kind == "helper":
        return isa.call(draw(imm32))
    if kind == "exit":
        return isa.exit_()
    return (isa.callx if kind == "callx" else isa.gotox)(draw(regs))


@st.composite
def memory(draw) -> Instruction:
    kind = draw(st.sampled_from(["ldx", "ldsx", "st", "stx", "abs", "ind", "imm64", "pseudo"]))
    d, s, off = draw(regs), draw(regs), draw(off16)
    if kind == "ldx":
        return isa.load_mem(d, s, off, draw(sizes))
    if kind == "ldsx":
        return isa.load_memsx(d, s, off, draw(st.sampled_from([Size.B, Size.H, Size.W])))
    if kind == "st":
        return isa.store_imm(d, off, draw(imm32), draw(sizes))
    if kind == "stx":
        return isa.store_mem(d, off, s, draw(sizes))
    legacy = st.sampled_from([Size.B, Size.H, Size.W])
    if kind == "abs":
        return isa.ld_abs(draw(imm32), draw(legacy))
    if kind == "ind":  # LLVM has no spelling for a non-zero immediate: see test_llvm_rejects
        return isa.ld_ind(s, 0, draw(legacy))
    if kind == "imm64":
        return isa.ld_imm64(d, draw(imm64))
    return isa.ld_imm64(d, draw(st.integers(0, 0xFFFFFFFF)),
                        draw(st.sampled_from(list(PseudoLoad)[1:])))


@st.composite
def atomics(draw) -> Instruction:
    d, s, off = draw(regs), draw(regs), draw(off16)
    op = draw(st.sampled_from(list(AtomicOp)))
    if op == AtomicOp.LOAD_ACQ:
        return isa.load_acquire(d, s, off, draw(sizes))
    if op == AtomicOp.STORE_REL:
        return isa.store_release(d, off, s, draw(sizes))
    return isa.atomic(op, d, off, s, draw(st.sampled_from([Size.W, Size.DW])))


#: every form LLVM can spell, with edge values
llvm_instructions = st.one_of(alu(), alu_special(), jumps(), calls(), memory(), atomics())


@st.composite
def extended(draw) -> Instruction:
    """Forms with no LLVM spelling (kernel-style or ld_pseudo extensions)."""
    kind = draw(st.sampled_from(["pcall", "kfunc", "ind", "pseudo_hi", "gotol"]))
    if kind == "gotol":
        return isa.gotol(draw(imm32.filter(lambda v: not -0x8000 <= v <= 0x7FFF)))
    if kind == "pcall":
        return Instruction(isa.CALL, 0, isa.PseudoCall.CALL, 0, draw(imm32))
    if kind == "kfunc":
        return isa.call_kfunc(draw(imm32), draw(off16))
    if kind == "ind":
        return isa.ld_ind(draw(regs), draw(imm32.filter(bool)), Size.W)
    return isa.ld_map_value(draw(regs), draw(st.integers(0, 0xFFFF)), draw(st.integers(1, 0xFFFF)))


#: every form there is
all_instructions = st.one_of(llvm_instructions, extended())
