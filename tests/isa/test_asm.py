"""Assembly: labels, functions, map references, range checks."""

from __future__ import annotations

import pytest

from pybpfasm import isa
from pybpfasm.asm import AssemblyError, Program, assemble
from pybpfasm.isa import R0, R1, R2, JEq, Mov, PseudoLoad, Size, encode
from pybpfasm.text import parse


def test_forward_and_backward_jumps() -> None:
    insns = assemble(parse("""
    top:
        r1 += 1
        if r1 < 10 goto top
        goto out
        r0 = 1
    out:
        exit
    """))
    assert [i.jump_offset for i in insns[1:3]] == [-2, 1]


def test_jumps_count_ld_imm64_as_two_slots() -> None:
    insns = assemble(parse("goto out\nr1 = 5 ll\nout:\nexit"))
    assert insns[0].off == 2


def test_bpf_to_bpf_functions_and_pointers() -> None:
    insns = assemble(parse("""
    main:
        call helper
        r2 = helper ll
        exit
    helper:
        r0 = 0
        exit
    """))
    assert (insns[0].src, insns[0].imm) == (isa.PseudoCall.CALL, 3)
    assert (insns[1].src, insns[1].imm) == (PseudoLoad.FUNC, 2)  # from the first slot
    assert encode(insns)[16:24].hex() == "0000000000000000"  # second slot stays clear


class FakeFd:
    """Anything with fileno(), like a live map object."""

    def fileno(self) -> int:
        return 7


def test_map_references() -> None:
    insns = assemble([isa.ld_map_fd(R1, "counts"), isa.ld_map_value(R2, "config", 16),
                      *parse("r3 = counts ll\nld_pseudo r4, 2, config, 8")],
                     maps={"counts": 5, "config": FakeFd()})
    assert [(i.src, i.imm) for i in insns] == [
        (PseudoLoad.MAP_FD, 5), (PseudoLoad.MAP_VALUE, 16 << 32 | 7),
        (PseudoLoad.MAP_FD, 5), (PseudoLoad.MAP_VALUE, 8 << 32 | 7)]


def test_unknown_label_names_itself_and_its_line() -> None:
    with pytest.raises(AssemblyError, match=r"^prog.s:3:5: unknown label 'nowhere'$"):
        assemble(parse("r0 = 0\nexit\n    goto nowhere\n", "prog.s"))
    with pytest.raises(AssemblyError, match=r"unknown map or label 'events'"):
        assemble(parse("r1 = events ll"))


def test_python_constructors_record_their_call_site() -> None:
    with pytest.raises(AssemblyError) as info:
        assemble([JEq.imm(R1, 0, "missing")])  # this line is named in the error
    assert f"{__file__}:" in str(info.value)


def test_jump_out_of_range_names_the_label() -> None:
    text = "goto far\n" + "r0 = 0\n" * 40000 + "far:\nexit\n"
    with pytest.raises(AssemblyError, match=r"<input>:1:1: jump to 'far' is 40000 instructions away"):
        assemble(parse(text))
    insns = assemble(parse(text), long_jumps=True)
    assert insns[0].opcode == isa.GOTOL and insns[0].imm == 40000


def test_relaxation_reaches_a_fixed_point() -> None:
    """Growing one jump can push another out of range; both end up long."""
    text = ("if r1 == 0 goto far\n" + "r0 = 0\n" * 32766 + "if r1 == 1 goto far\n"
            + "r0 = 0\n" * 2 + "far:\nexit\n")
    insns = assemble(parse(text), long_jumps=True)
    assert insns[0].opcode == JEq.inverse.code | isa.Class.JMP and insns[1].opcode == isa.GOTOL
    target = sum(i.slots for i in insns[:-1])
    pos = 0
    for insn in insns:
        if insn.opcode == isa.GOTOL:
            assert pos + 1 + insn.imm == target
        pos += insn.slots


def test_duplicate_symbols() -> None:
    with pytest.raises(AssemblyError, match="label 'a' defined twice"):
        assemble([Mov.imm(R0, 0).__class__(0xB7, symbol="a"), isa.Instruction(0x95, symbol="a")])


def test_program_builder() -> None:
    p = Program()
    p.emit(Mov.imm(R0, 0), JEq.imm(R1, 0, "out"))
    p.emit(isa.load_mem(R0, R1, 0, Size.W))
    p.label("out")
    p.emit(isa.exit_())
    assert p.bytes() == encode(assemble(parse("r0 = 0\nif r1 == 0 goto +1\nr0 = *(u32 *)(r1 + 0)\nexit")))
    p.label("dangling")
    with pytest.raises(AssemblyError, match="names no instruction"):
        p.assemble()
