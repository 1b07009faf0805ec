"""Our decoder and text agree with the kernel verifier's own instruction printout.

Hypothesis builds programs the verifier accepts (every register and the stack
initialised, forward jumps only); each is loaded with log level 2 and every
instruction the kernel prints must parse to the instruction we loaded. The
kernel's listing, fed to ``pybpfasm asm``, must give back the loaded bytes.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfasm.cli import main
from pybpfasm.isa import (
    AluOp,
    AtomicOp,
    Instruction,
    JumpOp,
    Reg,
    Size,
    atomic,
    bswap,
    call,
    exit_,
    gotol,
    ja,
    ld_imm64,
    load_mem,
    load_memsx,
    movsx,
    neg,
    store_imm,
    store_mem,
    to_be,
    to_le,
)
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import ProgType
from pybpfasm.text import format_instruction, parse

#: "12: (bf) r1 = r6  ; R1=..." or, in the live-registers table, "  12: .1........ (bf) r1 = r6"
KERNEL_INSN = re.compile(r"^\s*(\d+): (?:[.0-9]{10} )?\(([0-9a-f]{2})\) (.*?)(?:\s+;.*)?$")

regs = st.sampled_from([Reg(i) for i in range(10)])
imm32 = st.integers(-(2**31), 2**31 - 1)
sizes = st.sampled_from(list(Size))


@st.composite
def stack_slot(draw: st.DrawFn, size: Size) -> int:
    """An aligned offset into the initialised 64 bytes below the frame pointer."""
    return -size.nbytes * draw(st.integers(1, 64 // size.nbytes))


@st.composite
def alu(draw: st.DrawFn) -> list[Instruction]:
    op = draw(st.sampled_from(list(AluOp)))
    wide = draw(st.booleans())
    if draw(st.booleans()):
        return [(op.reg if wide else op.reg32)(draw(regs), draw(regs))]
    if op in (AluOp.LSH, AluOp.RSH, AluOp.ARSH):
        value = draw(st.integers(0, 63 if wide else 31))
    elif op in (AluOp.DIV, AluOp.SDIV, AluOp.MOD, AluOp.SMOD):
        value = draw(imm32.filter(bool))
    else:
        value = draw(imm32)
    return [(op.imm if wide else op.imm32)(draw(regs), value)]


@st.composite
def unary(draw: st.DrawFn) -> list[Instruction]:
    dst = draw(regs)
    kind = draw(st.sampled_from(["neg", "be", "le", "bswap", "movsx", "movsx32"]))
    if kind == "neg":
        return [neg(dst, alu32=draw(st.booleans()))]
    if kind == "movsx":
        return [movsx(dst, draw(regs), draw(st.sampled_from([8, 16, 32])))]
    if kind == "movsx32":
        return [movsx(dst, draw(regs), draw(st.sampled_from([8, 16])), alu32=True)]
    make = {"be": to_be, "le": to_le, "bswap": bswap}[kind]
    return [make(dst, draw(st.sampled_from([16, 32, 64])))]


@st.composite
def memory(draw: st.DrawFn) -> list[Instruction]:
    size = draw(sizes)
    off = draw(stack_slot(size))
    kind = draw(st.sampled_from(["load", "loadsx", "store", "store_imm", "atomic"]))
    if kind == "load":
        return [load_mem(draw(regs), Reg.R10, off, size)]
    if kind == "loadsx" and size != Size.DW:
        return [load_memsx(draw(regs), Reg.R10, off, size)]
    if kind == "store_imm":
        return [store_imm(Reg.R10, off, draw(imm32), size)]
    if kind == "atomic" and size in (Size.W, Size.DW):
        op = draw(st.sampled_from([a for a in AtomicOp if a < AtomicOp.LOAD_ACQ]))
        return [atomic(op, Reg.R10, off, draw(regs), size)]
    return [store_mem(Reg.R10, off, draw(regs), size)]


@st.composite
def helper_call(draw: st.DrawFn) -> list[Instruction]:
    """bpf_ktime_get_ns or bpf_get_prandom_u32, then r1-r5 (clobbered) set again."""
    return [call(draw(st.sampled_from([5, 7]))), *(AluOp.MOV.imm(Reg(r), r) for r in range(1, 6))]


@st.composite
def jump(draw: st.DrawFn) -> list[Instruction]:
    """A forward jump; its target label is filled in by :func:`programs`.

    Unconditional jumps go to the next instruction: anything they skipped
    would be unreachable, which the verifier rejects.
    """
    kind = draw(st.sampled_from(["cond_imm", "cond_reg", "ja", "gotol"]))
    if kind == "ja":
        return [ja("+1")]
    if kind == "gotol":
        return [gotol("+1")]
    op = draw(st.sampled_from(list(JumpOp)))
    wide = draw(st.booleans())
    if kind == "cond_imm":
        return [(op.imm if wide else op.imm32)(draw(regs), draw(imm32), "?")]
    return [(op.reg if wide else op.reg32)(draw(regs), draw(regs), "?")]


wide_load = st.builds(lambda dst, value: [ld_imm64(dst, value)], regs, st.integers(0, 2**64 - 1))
pieces = st.one_of(alu(), unary(), memory(), helper_call(), jump(), wide_load)


@st.composite
def programs(draw: st.DrawFn) -> list[Instruction]:
    prologue = [AluOp.MOV.imm(Reg(r), r) for r in range(10)]
    prologue += [store_imm(Reg.R10, -8 * i, 0, Size.DW) for i in range(1, 9)]
    body = [insn for piece in draw(st.lists(pieces, min_size=1, max_size=40)) for insn in piece]
    labelled = []
    for i, insn in enumerate(body):
        if insn.reference == "+1":
            insn = dataclasses.replace(insn, reference=f"L{i + 1}")
        elif insn.reference == "?":
            target = draw(st.integers(i + 1, min(i + 6, len(body))))
            insn = dataclasses.replace(insn, reference=f"L{target}")
        labelled.append(dataclasses.replace(insn, symbol=f"L{i}"))
    epilogue = [dataclasses.replace(AluOp.MOV.imm(Reg.R0, 0), symbol=f"L{len(body)}"), exit_()]
    return prologue + labelled + epilogue


def kernel_listing(log: str) -> dict[int, tuple[int, str]]:
    """slot -> (opcode, text) for every instruction the verifier printed."""
    listing = {}
    for line in log.splitlines():
        m = KERNEL_INSN.match(line)
        if m:
            listing[int(m.group(1))] = (int(m.group(2), 16), m.group(3))
    return listing


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_kernel_printout_agrees(tmp_path_factory, insns: list[Instruction]) -> None:
    spec = ProgramSpec(ProgType.SOCKET_FILTER, insns)
    with spec.load(log_level=2) as prog:
        log = prog.log
    listing = kernel_listing(log)
    # kernels since 6.15 print every instruction in a live-registers table; older ones
    # print only those on explored paths (a branch the verifier knows is dead is skipped)
    complete = "Live regs before insn:" in log
    slot = 0
    for insn in spec.instructions:
        assert slot in listing or not complete, f"the kernel did not print slot {slot}"
        if slot in listing:
            opcode, text = listing[slot]
            assert opcode == insn.opcode
            (parsed,) = parse(f"{slot}: ({opcode:02x}) {text}")
            assert parsed == insn, f"kernel {text!r} vs ours {format_instruction(insn)!r}"
        (ours,) = parse(format_instruction(dataclasses.replace(insn, reference=None)))
        assert ours == insn
        slot += insn.slots
    if not complete:
        return

    source = tmp_path_factory.mktemp("listing") / "kernel.s"
    source.write_text("".join(f"{s}: ({op:02x}) {text}\n" for s, (op, text) in sorted(listing.items())
                              if s in _starts(spec.instructions)))
    out = source.with_suffix(".bin")
    assert main(["asm", str(source), "-o", str(out)]) == 0
    assert Path(out).read_bytes() == spec.bytecode


def _starts(insns: list[Instruction]) -> set[int]:
    starts, slot = set(), 0
    for insn in insns:
        starts.add(slot)
        slot += insn.slots
    return starts
