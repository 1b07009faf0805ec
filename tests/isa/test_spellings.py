"""Spellings clang and the kernel print, each checked against clang's bytes in both byte orders."""

from __future__ import annotations

import pytest

from pybpfasm import isa
from pybpfasm.asm import assemble
from pybpfasm.isa import encode
from pybpfasm.text import AsmSyntaxError, parse

pytest.importorskip("ziglang", reason="the LLVM oracle (ziglang wheel) comes with the test extra")

from .llvm import llvm_assemble

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


# -- spellings -------------------------------------------------------------------
@pytest.mark.parametrize("byteorder,texts", [
    ("little", [".8byte 0x95", ".quad 0x00000001000000b7", ".8byte 0x95, 0x1000000b7",
                ".quad 0x118, 0x0\n.quad 7", "r0 = 0\n.8byte 0x95 + 0"]),
    ("big", [".8byte 0x9500000000000000", ".quad 0xb700000000000001", ".quad 0x1810000000000000, 5"]),
])
def test_raw_slots(byteorder: str, texts: list[str]) -> None:
    """A raw slot is a 64-bit number stored in the target's byte order, as clang stores it."""
    for text, theirs in zip(texts, llvm_assemble(texts, byteorder)):
        assert ours(text, byteorder).hex() == theirs.hex(), text


def test_raw_slot_errors() -> None:
    assert error(".8byte 0xff").startswith("x.s:1:8: not an instruction: unknown")
    assert error(".8byte 0x18").startswith("x.s:1:8: ld_imm64 is missing its second slot")


def test_local_labels() -> None:
    assert_like_clang(["1:\ngoto 1b\ngoto 1f\n1:\nexit",
                       "0: r0 = 1; if r0 > 2 goto 0f; goto 0b\n0: exit",
                       "1:\n2:\nr0 = 0\nif r0 == 0 goto 2b\n1: r0 = 1; goto 1b\nexit"])
    assert error("goto 1f\nexit") == "x.s:1:6: no local label '1:' after '1f'"
    assert error("goto 3b") == "x.s:1:6: no local label '3:' before '3b'"


def test_block_comments() -> None:
    assert_like_clang(["r0 = 1 /* a\n b */ ; exit", "r0 /* x */ = 2 // end", "/* ; */ exit"])
    assert error("r0 = 1\n  /* open") == "x.s:2:3: unterminated '/*' comment"


def test_constants_and_expressions() -> None:
    assert_like_clang([".equ X, 5\nr1 = X", ".set X, 5\nr1 = X + 1 * 2",
                       ".equ X, 1 << 3\n.equ Y, X * 2\nr1 = Y; r2 = Y ll",
                       "r1 = 2 | 1 + 1", "r1 = 1 << 2 + 1", "r1 = -16 >> 4 << 4", "r1 = 7 / -2",
                       "r1 = -7 % 2", "r1 = 5 - -2", "r1 = *(u32 *)(r2 + 2*2)", ".equ X, 5\n.equ X, 6\nr1 = X",
                       ".equ N, 3\nif r1 > N goto +1\n*(u32 *)(r10 - 8) = N"])
    assert error("r1 = 1 / 0") == "x.s:1:8: division by zero"
    # '>>' is logical on 64 bits, as in LLVM; clang then truncates silently, we refuse
    assert error("r1 = -16 >> 1").startswith("x.s:1:6: immediate 9223372036854775800 needs ld_imm64")
    assert error(".equ r1, 2").startswith("x.s:1:6: .equ wants a constant name")


def test_binary_and_character_literals() -> None:
    assert_like_clang(["r1 = 0b101", "r1 = 0B11", "r1 = 'a'", "r1 = -'a'", "r1 = '\\n'", "r1 = '\\''",
                       "w2 = ';'", "r1 = 0X1f"])
    assert error("r1 = 0b2") == "x.s:1:6: invalid number '0b2'"


def test_uppercase_registers() -> None:
    assert_like_clang(["R1 = 2", "W1 = 2", "R1 += 3"])
    assert ours("r1 = R2") == ours("r1 = r2")


def test_old_callx_encoding_decodes() -> None:
    """Older LLVM put callx's register in imm; LLVM 18+ puts it in dst."""
    from pybpfasm.text import format_instruction

    (old,) = isa.decode(bytes.fromhex("8d00000003000000"))
    assert format_instruction(old) == "callx r3" and old.callx_register == 3
    assert_like_clang(["callx r3"])
    assert ours("callx r3").hex() == "8d03000000000000"


def test_objdump_listings() -> None:
    """llvm-objdump with symbolized targets, without raw bytes, with -r relocations."""
    symbolized = """
0000000000000000 <test>:
       0:	b7 00 00 00 00 00 00 00	r0 = 0x0
       1:	05 00 01 00 00 00 00 00	goto +0x1 <test+0x18>
       2:	b7 00 00 00 01 00 00 00	r0 = 0x1
       3:	95 00 00 00 00 00 00 00	exit
"""
    bare = """
Disassembly of section .text:

0000000000000000 <test>:
       0:	r0 = 0x0
       1:	goto +0x1 <test+0x18>
       2:	r0 = 0x1
       3:	exit
"""
    want = bytes.fromhex("b700000000000000 0500010000000000 b700000001000000 9500000000000000")
    assert ours(symbolized) == want and ours(bare) == want
    relocated = parse("""
       0:	18 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00	r1 = 0x0 ll
		0000000000000000:  R_BPF_64_64	my_map
       2:	85 10 00 00 ff ff ff ff	call -0x1
		0000000000000010:  R_BPF_64_32	helper
""")
    assert [i.reference for i in relocated] == ["my_map", "helper"]


@pytest.mark.parametrize("text,where,message", [
    ("w0 = *(u64 *)(r1 + 0)", "1:7", "a load of u64 writes an r register"),
    ("w0 = *(s8 *)(r1 + 0)", "1:7", "a load of s8 writes an r register"),
    ("*(u64 *)(r1 + 0) = w2", "1:20", "a store of u64 takes an r register"),
    ("lock *(u64 *)(r1 + 0) += w2", "1:26", "an atomic operation on u64 takes an r register"),
    ("w1 = bswap16 w1", "1:14", "byte swaps work on r registers"),
    ("w1 = be16 w1", "1:11", "byte swaps work on r registers"),
    ("r2 = atomic_fetch_add((u32 *)(r1 + 0), r2)", "1:23", "takes a w register"),
    ("w2 = atomic_fetch_add((u64 *)(r1 + 0), w2)", "1:23", "takes a r register"),
    ("r2 = xchg32_32(r1 + 0, r2)", "1:15", "takes a w register"),
    ("r0 = load_acquire((u8 *)(r1 + 0))", "1:19", "takes a w register"),
    ("store_release((u64 *)(r1 + 0), w2)", "1:32", "takes a r register"),
    ("w0 = *(u8 *)skb[4]", "1:7", "legacy packet loads write r0"),
])
def test_width_mismatches_are_errors_like_clang(text: str, where: str, message: str) -> None:
    (theirs,) = llvm_assemble([text])
    assert not isinstance(theirs, bytes), f"clang accepts {text!r}"
    err = error(text)
    assert err.startswith(f"x.s:{where}: ") and message in err, err


def test_widths_clang_accepts() -> None:
    assert_like_clang(["w0 = *(u8 *)(r1 + 0)", "w0 = *(u32 *)(r1 + 0)", "*(u8 *)(r1 + 0) = w2",
                       "*(u32 *)(r1 + 0) = r2", "lock *(u32 *)(r1 + 0) += r2",
                       "lock *(u32 *)(r1 + 0) += w2", "w0 = load_acquire((u8 *)(r1 + 0))",
                       "w2 = atomic_fetch_add((u32 *)(r1 + 0), w2)", "w2 = xchg32_32(r1 - 8, w2)"])
    # the kernel prints rN for every width: its listings still read
    assert ours("10: (c3) r2 = atomic_fetch_add((u32 *)(r1 +8), r2)").hex() == "c321080001000000"


def test_kernel_internal_forms_read_but_not_loadable() -> None:
    from pybpfasm.asm import AssemblyError

    percpu, ax, by_id = parse("3: (bf) r0 = &(void __percpu *)(r0)\n"
                              "4: (bf) r11 = r1\n"
                              "5: (18) r1 = map[id:10477]\n")
    assert encode([percpu]).hex() == "bf00ffff00000000" and percpu.internal
    assert encode([ax]).hex() == "bf1b000000000000" and "BPF_REG_AX" in ax.internal
    assert (by_id.src, by_id.imm) == (isa.PseudoLoad.MAP_FD, 10477) and by_id.internal
    with pytest.raises(AssemblyError, match=r"<input>:2:9: r11 is BPF_REG_AX.*cannot be loaded"):
        assemble([ax])
    assert error("r11 = 1").startswith("x.s:1:1: expected a register")
