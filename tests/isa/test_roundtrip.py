"""Round trips: bytes -> text -> bytes and text -> bytes -> text are identities."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfasm import isa
from pybpfasm.asm import assemble
from pybpfasm.isa import DecodeError, decode, encode
from pybpfasm.text import format_instruction, format_program, parse

from .strategies import all_instructions

byteorders = st.sampled_from(["little", "big"])


@settings(max_examples=500)
@given(st.lists(all_instructions, max_size=30), byteorders, st.booleans())
def test_bytes_text_bytes(insns: list[isa.Instruction], byteorder: str, hex: bool) -> None:
    data = encode(insns, byteorder)
    text = format_program(decode(data, byteorder), hex=hex)
    assert encode(parse(text), byteorder) == data


@settings(max_examples=500)
@given(st.lists(all_instructions, max_size=30))
def test_text_bytes_text(insns: list[isa.Instruction]) -> None:
    text = format_program(insns)
    assert format_program(decode(encode(parse(text)))) == text


@settings(max_examples=300)
@given(st.lists(all_instructions, max_size=30))
def test_labelled_listing_reassembles(insns: list[isa.Instruction]) -> None:
    """Disassembly with synthesised labels assembles back to the same bytes
    (targets outside the program or inside an ld_imm64 keep their offsets)."""
    data = encode(insns)
    text = format_program(decode(data), labels=True)
    assert encode(assemble(parse(text))) == data


@settings(max_examples=2000)
@given(st.binary(min_size=0, max_size=64), byteorders)
def test_arbitrary_bytes_decode_or_name_the_offset(data: bytes, byteorder: str) -> None:
    try:
        insns = decode(data, byteorder)
    except DecodeError as err:
        assert 0 <= err.offset < max(len(data), 1) and err.offset % 8 == 0
        assert str(err).startswith(f"byte offset {err.offset}: ")
        return
    assert encode(insns, byteorder) == data
    # text spells callx in today's encoding (register in dst), whichever encoding it came in
    today = [replace(i, dst=i.callx_register, imm=0) if i.opcode == isa.CALLX else i for i in insns]
    assert encode(parse(format_program(insns)), byteorder) == encode(today, byteorder)


def test_decode_errors_name_offsets() -> None:
    good = encode([isa.Mov.imm(0, 1)])
    with pytest.raises(DecodeError, match=r"^byte offset 8: unknown"):
        decode(good + bytes([0xFF]) + bytes(7))
    with pytest.raises(DecodeError, match=r"^byte offset 8: ld_imm64 is missing its second slot"):
        decode(good + encode([isa.ld_imm64(1, 5)])[:8])
    with pytest.raises(DecodeError, match=r"^byte offset 8: length 13"):
        decode(good + b"\x95" * 5)
    with pytest.raises(DecodeError, match=r"^byte offset 16: second slot"):
        decode(good + bytes.fromhex("1801000005000000 0100000000000000"))
    with pytest.raises(DecodeError, match="exit uses reserved fields"):
        decode(bytes.fromhex("9501000000000000"))


def test_instruction_equality_ignores_metadata() -> None:
    a = isa.Mov.imm(isa.R0, 0)
    assert a.source is not None and a.source.file == __file__
    assert a == decode(encode([a]))[0]
    assert hash(a) == hash(decode(encode([a]))[0])
    assert a.dst == 0 and type(a.dst) is int
    with pytest.raises(ValueError, match="does not fit in 32 bits"):
        isa.Mov.imm(isa.R0, 1 << 32)
    with pytest.raises(ValueError, match="offset"):
        isa.load_mem(1, 2, 0x8000, isa.Size.W)


def test_unsigned_immediates_normalise() -> None:
    assert isa.Mov.imm(0, 0xFFFFFFFF) == isa.Mov.imm(0, -1)
    assert format_instruction(isa.Mov.imm(0, 0xFFFFFFFF)) == "r0 = -1"
