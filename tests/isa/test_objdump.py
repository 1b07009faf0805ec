"""Our text against llvm-objdump's: one naming mode (LLVM's alu32 mode), immediates in hex."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfasm import isa
from pybpfasm.isa import AtomicOp, Class, Mode, encode
from pybpfasm.text import format_instruction, format_program, parse

from .test_llvm import catalogue

OBJDUMP = shutil.which("llvm-objdump-19") or shutil.which("llvm-objdump-14") or shutil.which("llvm-objdump")
pytestmark = pytest.mark.oracle


def v3(insn: isa.Instruction) -> bool:
    """A form LLVM 14 (ISA v3) decodes with today's meaning."""
    alu = insn.cls in (Class.ALU, Class.ALU64)
    atomic_v4 = insn.cls == Class.STX and insn.mode == Mode.ATOMIC and insn.imm >= AtomicOp.LOAD_ACQ
    return not ((alu and insn.off) or atomic_v4 or insn.opcode == isa.CALLX)


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump (Debian llvm) is not installed")
def test_catalogue_prints_like_llvm_objdump(tmp_path: Path) -> None:
    pytest.importorskip("ziglang", reason="clang from the ziglang wheel builds the object")
    insns = catalogue()
    src, obj = tmp_path / "x.s", tmp_path / "x.o"
    src.write_text("".join(format_instruction(i) + "\n" for i in insns))
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "bpfel-freestanding", "-mcpu=v4",
                    "-c", str(src), "-o", str(obj)], check=True)
    listing = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", "--print-imm-hex", "--mattr=+alu32",
                              str(obj)], capture_output=True, text=True, check=True).stdout
    theirs = [re.sub(r" <[\w.]+(?:\+0x[0-9a-f]+)?>$", "", line.split(":", 1)[1].strip()).replace("\t", " ")
              for line in listing.splitlines() if re.match(r"\s+\d+:", line)]
    compared = 0
    for insn, text in zip(insns, theirs):
        if text != "<unknown>" and v3(insn):
            assert format_instruction(insn, hex=True) == text
            compared += 1
    assert compared > 100


def test_one_naming_mode() -> None:
    """Accesses of 32 bits or less through a register name it wN, 64-bit ones rN."""
    assert [format_instruction(i) for i in [
        isa.load_mem(0, 1, 0, isa.Size.B), isa.load_mem(0, 1, 0, isa.Size.W),
        isa.load_mem(0, 1, 0, isa.Size.DW), isa.load_memsx(0, 1, 0, isa.Size.W),
        isa.store_mem(1, 0, 2, isa.Size.H), isa.store_mem(1, 0, 2, isa.Size.DW),
        isa.atomic(AtomicOp.ADD, 1, 0, 2, isa.Size.W), isa.atomic(AtomicOp.ADD, 1, 0, 2, isa.Size.DW),
    ]] == ["w0 = *(u8 *)(r1 + 0)", "w0 = *(u32 *)(r1 + 0)", "r0 = *(u64 *)(r1 + 0)",
           "r0 = *(s32 *)(r1 + 0)", "*(u16 *)(r1 + 0) = w2", "*(u64 *)(r1 + 0) = r2",
           "lock *(u32 *)(r1 + 0) += w2", "lock *(u64 *)(r1 + 0) += r2"]


def test_hex_listing_reassembles() -> None:
    insns = catalogue()
    text = format_program(insns, hex=True)
    assert encode(parse(text)) == encode(insns)
    assert format_instruction(isa.Mov.imm(0, -1), hex=True) == "r0 = -0x1"
    assert format_instruction(isa.ja(-3), hex=True) == "goto -0x3"
    assert format_instruction(isa.ld_imm64(1, -2), hex=True) == "r1 = -0x2 ll"
