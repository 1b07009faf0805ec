"""The typed opcode: fields by name, the extended ALU and jump operations, reprs from isa alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pybpfasm import isa
from pybpfasm.isa import AluOp, Class, JumpOp, Mode, OpCode, Size, Source


def test_accessors() -> None:
    ldx = OpCode(0x61)
    assert (ldx.cls, ldx.mode, ldx.size, ldx.alu_op, ldx.jump_op, ldx.source) == (
        Class.LDX, Mode.MEM, Size.W, None, None, None)
    mov = OpCode.alu(AluOp.MOV, Source.X, alu32=True)
    assert mov == 0xBC and (mov.cls, mov.alu_op, mov.source) == (Class.ALU, AluOp.MOV, Source.X)
    jgt = OpCode.jump(JumpOp.JGT, Source.X, jmp32=True)
    assert jgt == 0x2E and jgt.jump_op == JumpOp.JGT and jgt.size is None
    assert OpCode.mem(Class.STX, Mode.ATOMIC, Size.DW) == 0xDB
    with pytest.raises(ValueError):
        OpCode(0x100)


def test_fixed_opcodes_come_from_the_enums() -> None:
    assert (isa.CALL, isa.EXIT, isa.JA, isa.GOTOL, isa.JCOND, isa.CALLX, isa.GOTOX, isa.LD_IMM64) == (
        0x85, 0x95, 0x05, 0x06, 0xE5, 0x8D, 0x0D, 0x18)
    assert (AluOp.NEG.code, AluOp.SWAP.code, AluOp.MOV.code) == (isa.NEG_OP, isa.END_OP, isa.MOV_OP)
    assert set(JumpOp.every()) - set(JumpOp) == {JumpOp.JA, JumpOp.CALL, JumpOp.EXIT, JumpOp.JCOND}
    assert set(AluOp.every()) - set(AluOp) == {AluOp.NEG, AluOp.SWAP, AluOp.MOVSX8, AluOp.MOVSX16,
                                               AluOp.MOVSX32}
    assert all(op.is_binary for op in AluOp) and len(AluOp) == 14 and len(JumpOp) == 11


def test_extended_alu_ops_carry_their_off() -> None:
    """As in cilium/ebpf: SDIV is DIV with off 1, MOVSX16 is MOV with off 16."""
    assert (AluOp.SDIV.code, AluOp.SDIV.off) == (AluOp.DIV.code, 1)
    assert (AluOp.MOVSX16.code, AluOp.MOVSX16.off) == (AluOp.MOV.code, 16)
    assert isa.SDiv.reg(1, 2).alu_op == AluOp.SDIV and isa.Div.reg(1, 2).alu_op == AluOp.DIV
    assert isa.movsx(1, 2, 32).alu_op == AluOp.MOVSX32 and isa.Mov.reg(1, 2).alu_op == AluOp.MOV
    assert isa.neg(1).alu_op == AluOp.NEG and isa.bswap(1, 16).alu_op == AluOp.SWAP
    assert isa.MovSX8.reg(1, 2) == isa.movsx(1, 2, 8)
    assert isa.exit_().jump_op == JumpOp.EXIT and isa.call(1).jump_op == JumpOp.CALL
    assert not AluOp.NEG.is_binary and AluOp.MOV.is_binary


def test_repr_names_fields_without_text() -> None:
    assert repr(isa.Mov.imm(0, 1)) == "Instruction(ALU64|MOV|K, imm=1)"
    assert repr(isa.SMod.reg32(1, 2)) == "Instruction(ALU|SMOD|X, dst=1, src=2, off=1)"
    assert repr(isa.load_mem(0, 1, 4, Size.W)) == "Instruction(LDX|MEM|W, src=1, off=4)"
    assert repr(isa.ja("out")) == "Instruction(JMP|JA|K, reference='out')"
    code = "import sys, pybpfasm.isa as i; repr(i.exit_()); print('pybpfasm.text' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
