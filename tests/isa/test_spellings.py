"""Spellings clang and the kernel print, each checked against clang's bytes in both byte orders."""

from __future__ import annotations

import pytest

from pybpfasm import isa
from pybpfasm.asm import assemble
from pybpfasm.isa import encode
from pybpfasm.text import AsmSyntaxError, parse

pytest.importorskip("ziglang", reason="the LLVM oracle (ziglang wheel) comes with the test extra")

from .llvm import llvm_assemble  # noqa: E402

pytestmark = pytest.mark.oracle


def ours(text: str, byteorder: str = "little") -> bytes:
    return encode(assemble(parse(text, byteorder=byteorder)), byteorder)


def assert_like_clang(texts: list[str]) -> None:
    """Each text assembles to exactly clang's bytes, little and big endian."""
    for byteorder in ("little", "big"):
        for text, theirs in zip(texts, llvm_assemble(texts, byteorder)):
            assert isinstance(theirs, bytes), f"clang rejects {text!r}: {theirs}"
            assert ours(text, byteorder).hex() == theirs.hex(), f"{text!r} ({byteorder})"


def error(text: str) -> str:
    with pytest.raises(AsmSyntaxError) as info:
        parse(text, "x.s")
    return str(info.value)


# -- the four bugs ---------------------------------------------------------------
def test_semicolon_separates_statements() -> None:
    assert_like_clang(["r0 = 1; exit", "r1 = 1;r2 = 2;  ; r3 = 3 ;", "; exit"])
    assert len(parse("r0 = 1; exit")) == 2


def test_verifier_lines_keep_their_state_comments() -> None:
    (insn,) = parse("27: (bf) r6 = r1                      ; R1=ctx() R6_w=ctx(); R2=1")
    assert encode([insn]).hex() == "bf16000000000000"


def test_leading_zero_is_octal_and_08_is_an_error() -> None:
    assert_like_clang(["r1 = 010", "goto +010", "r0 = *(u8 *)(r1 + 010)", "r1 = 00"])
    assert error("r1 = 1\n  r0 = *(u8 *)(r1 + 08)") == (
        "x.s:2:21: invalid digit '8' in octal constant '08'")
    assert error("goto +09").startswith("x.s:1:7: invalid digit '9'")


def test_named_calls_helper_or_kfunc() -> None:
    (kfunc,) = parse("5: (85) call bpf_task_acquire#12345")
    assert (kfunc.src, kfunc.imm) == (isa.PseudoCall.KFUNC, 12345)
    (unnamed,) = parse("6: (85) call kernel-function#77")
    assert (unnamed.src, unnamed.imm) == (isa.PseudoCall.KFUNC, 77)
    (helper,) = parse("4: (85) call bpf_map_lookup_elem#1")
    assert (helper.src, helper.imm) == (isa.PseudoCall.HELPER, 1)
    assert error("call bpf_map_lookup_elem#99") == "x.s:1:26: bpf_map_lookup_elem is helper 1, not 99"


def test_ll_suffix_glued_to_a_number_is_a_mov() -> None:
    assert_like_clang(["r1 = 1ll", "r1 = 0x10ULL", "r1 = 1u", "r1 = 1 ll", "r1 = 1ll ll"])
    assert [i.slots for i in parse("r1 = 1ll\nr1 = 1 ll")] == [1, 2]
