"""The asm/disasm commands: files in, bytes out, one-line errors with exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpfasm.cli", *args], input=stdin,
                          capture_output=True)


def test_asm_then_disasm(tmp_path: Path) -> None:
    src = tmp_path / "prog.s"
    src.write_text("r0 = 0\nif r1 > 3 goto out\nr1 = 0x1122334455667788 ll\nout:\nexit\n")
    out = tmp_path / "prog.bin"
    assert run("asm", str(src), "-o", str(out)).returncode == 0
    assert len(out.read_bytes()) == 5 * 8
    listing = run("disasm", str(out))
    assert listing.returncode == 0
    assert listing.stdout.decode().split("\n") == [
        "\tr0 = 0", "\tif r1 > 3 goto +2", "\tr1 = 0x1122334455667788 ll", "\texit", ""]
    labelled = run("disasm", "--labels", str(out)).stdout.decode()
    assert "goto LBB0_4" in labelled and "LBB0_4:" in labelled


def test_stdin_stdout_and_big_endian() -> None:
    little = run("asm", "-", stdin=b"r1 = 2\n").stdout
    big = run("asm", "--big-endian", "-", stdin=b"r1 = 2\n").stdout
    assert little.hex() == "b701000002000000" and big.hex() == "b710000000000002"
    assert run("disasm", "--big-endian", "-", stdin=big).stdout == b"\tr1 = 2\n"


@pytest.mark.parametrize("args,stdin,code,message", [
    (("asm", "-"), b"r0 = 1\nr0 +=\n", 2, "<stdin>:2:6: unexpected end of line"),
    (("asm", "-"), b"goto nowhere\n", 2, "<stdin>:1:1: unknown label 'nowhere'"),
    (("disasm", "-"), bytes.fromhex("b700000000000000ff00000000000000"), 2, "byte offset 8: "),
    (("asm", "/nonexistent.s"), b"", 2, "cannot read /nonexistent.s"),
    (("asm", "--map", "x", "-"), b"exit\n", 2, "--map wants NAME=FD"),
    (("frob",), b"", 2, "unknown command 'frob'"),
])
def test_bad_input_is_one_line(args, stdin: bytes, code: int, message: str) -> None:
    proc = run(*args, stdin=stdin)
    err = proc.stderr.decode()
    assert proc.returncode == code
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


HUGE = "9" * 5000


@pytest.mark.parametrize("text,where", [
    (f"r1 = {HUGE}", "1:6"),
    (f"r{HUGE} = 1", "1:1"),
    (f"r0 = *(u32 *)(r1 + {HUGE})", "1:20"),
    (f"goto +{HUGE}", "1:7"),
    (f"r1 = 0x{HUGE}", "1:6"),
    (f".equ X, {HUGE}", "1:9"),
    (f"{HUGE}:\nexit", "1:1"),
    (f"call bpf_map_lookup_elem#{HUGE}", "1:26"),
    ("r1 = " + "(" * 5000 + "1" + ")" * 5000, "1:106"),
    ("r1 = " + "-" * 5000 + "1", "1:106"),
])
def test_huge_numbers_are_one_line(text: str, where: str) -> None:
    proc = run("asm", "-", stdin=text.encode())
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"pybpfasm asm: <stdin>:{where}: ") and len(err) < 200, err


@pytest.mark.parametrize("spec,message", [
    ("m=4294967299", "fd 4294967299 out of range [0, 2147483647]"),
    ("m=2147483648", "out of range"),
    ("m=\u0668", "ASCII digits"),
    (f"m={HUGE}", "out of range"),
])
def test_map_fd_range(spec: str, message: str) -> None:
    proc = run("asm", "--map", spec, "-", stdin=b"exit\n")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and message in err and err.count("\n") == 1 and len(err) < 200


def test_disasm_hex() -> None:
    code = run("asm", "-", stdin=b"r1 = -16\ngoto -1\nw0 = *(u32 *)(r1 + 20)\n").stdout
    assert run("disasm", "--hex", "-", stdin=code).stdout.decode() == (
        "\tr1 = -0x10\n\tgoto -0x1\n\tw0 = *(u32 *)(r1 + 0x14)\n")
