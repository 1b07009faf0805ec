"""Hostile input: mutated assembler text and objects give one-line errors, never a traceback.

The normal suite runs a small fixed budget; ``PYBPFASM_FUZZ_LONG=1`` runs 10,000
inputs per surface (assembler lines, objects).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfasm.asm import assemble
from pybpfasm.commands.disasm import object_listing
from pybpfasm.errors import BPFError
from pybpfasm.isa import encode
from pybpfasm.objfile import read_object
from pybpfasm.objwrite import write_object
from pybpfasm.text import format_instruction, parse_unit

from .test_llvm import catalogue
from .test_text import KERNEL_LINES

LONG = bool(os.environ.get("PYBPFASM_FUZZ_LONG"))
BUDGET = settings(max_examples=10_000 if LONG else 300, deadline=None, derandomize=not LONG,
                  suppress_health_check=list(HealthCheck))
HERE = Path(__file__).parent
ELF_DIR = HERE.parent / "elf"

#: valid lines of every kind the parser reads, to mutate
CORPUS = [format_instruction(i) for i in catalogue()] + [line for line, _ in KERNEL_LINES] + [
    "r0 = 1; exit", "1: goto 1b", "goto 1f", ".equ X, 1 << 3", "r1 = X + 'a' * 2", ".8byte 0x95",
    ".quad 0x118, 0", "r0 = 0 /* c */ ; exit", "R1 = 0b101", "0000000000000000 <prog>:",
    "       1:	05 00 01 00 00 00 00 00	goto +0x1 <test+0x18>", "  4: r5 = 5",
    "3: (bf) r0 = &(void __percpu *)(r0)", "5: (18) r1 = map[id:10477]", "call bpf_task_acquire#12345",
    "call kernel-function#7", ".section xdp", ".map m, type=array, key=4, value=8, max_entries=1",
    ".globl f", "f:", "r1 = m ll", "call f", ".section license", '.asciz "GPL"', "r1 = 1ll",
    "\t\t0000000000000008:  R_BPF_64_64\tmy_map", "long main():", "; source line",
    "       b7 01 00 00 00 00 00 00",
]
PIECES = ["9" * 5000, "(" * 150, "-" * 150, "0x", "08", "0b", "1f", "1b", "'", "'\\", "\"", ";", "#", "/*", "*/", "//", ":",
          "(", ")", "[", "]", ",", "=", "-", "+", "ll", "r11", "w", "R", ".equ", ".8byte", "<", ">",
          "\x00", "\u0668", "\xff", " ", "\t", "\n", "call", "goto", "*", "&", "%", "<<", "s>>="]


@st.composite
def mutated_text(draw) -> str:
    lines = draw(st.lists(st.sampled_from(CORPUS), min_size=1, max_size=6))
    text = "\n".join(lines)
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(PIECES) | st.text(max_size=3))
        end = min(len(text), pos + draw(st.integers(0, 6)))
        if kind == "insert":
            text = text[:pos] + piece + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[end:]
        else:
            text = text[:pos] + piece + text[end:]
    return text


ONE_LINE_AT = re.compile(r"^fuzz\.s:\d+:\d+: [^\n]+$")


def check_text(text: str) -> None:
    try:
        unit = parse_unit(text, "fuzz.s")
        encode(assemble(unit.instructions))
    except BPFError as err:
        assert ONE_LINE_AT.match(str(err)), repr(str(err))
        return
    try:
        write_object(unit)
    except BPFError as err:  # object-level errors name the instruction where there is one
        assert str(err) and "\n" not in str(err), repr(str(err))


@BUDGET
@given(mutated_text())
def test_mutated_assembler_text(text: str) -> None:
    check_text(text)


def seed_objects() -> list[bytes]:
    """Ours in both byte orders, and clang's when the ziglang wheel is there."""
    source = (ELF_DIR / "count.s").read_text()
    seeds = [write_object(parse_unit(source, "count.s", order), order) for order in ("little", "big")]
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return seeds
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "objects.o")
        subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "bpfel-freestanding",
                        "-mcpu=v3", "-O2", "-g", "-c", str(ELF_DIR / "objects.c"), "-o", str(out)],
                       check=True)
        return [*seeds, out.read_bytes()]


SEEDS = seed_objects()


@st.composite
def mutated_object(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["byte", "word", "truncate"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "word":
            data[pos: pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x80",
                                                       b"\x01\x00\x00\x00", b"\x00\x00\x00\x00"]))
        else:
            del data[pos:]
            if not data:
                data += b"\x7fELF"
    return bytes(data)


@BUDGET
@given(mutated_object())
def test_mutated_objects(data: bytes) -> None:
    try:
        obj = read_object(data, "fuzz.o")
    except BPFError as err:
        assert str(err).startswith("fuzz.o: ") or str(err).startswith("byte offset"), str(err)
        assert "\n" not in str(err)
        return
    object_listing(obj)
