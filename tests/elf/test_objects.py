"""ELF objects in and out: clang's objects read and loaded, ours accepted by bpftool and our loader."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfasm import elf
from pybpfasm.objfile import ObjectError, load_object, read_object
from pybpfasm.objwrite import write_object
from pybpfasm.text import format_instruction, parse_unit

HERE = Path(__file__).parent
OBJDUMP = shutil.which("llvm-objdump-19") or shutil.which("llvm-objdump-14") or shutil.which("llvm-objdump")


def root(test):
    """Marked root (for -m 'not root') and skipped without it."""
    return pytest.mark.root(pytest.mark.skipif(os.geteuid() != 0, reason="needs root to load programs")(test))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpfasm.cli", *args], capture_output=True, text=True)


def clang(tmp_path_factory, target: str) -> Path:
    pytest.importorskip("ziglang", reason="clang from the ziglang wheel builds the object")
    out = tmp_path_factory.mktemp("clang") / f"objects-{target}.o"
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", f"{target}-freestanding", "-mcpu=v3",
                    "-O2", "-g", "-c", str(HERE / "objects.c"), "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def clang_object(tmp_path_factory) -> Path:
    return clang(tmp_path_factory, "bpfel")


@pytest.fixture(scope="module")
def our_object(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ours") / "count.o"
    assert cli("asm", str(HERE / "count.s"), "-o", str(out)).returncode == 0
    return out


def objdump(path: Path) -> dict[str, list[tuple[str, str | None]]]:
    """llvm-objdump's listing: section -> [(instruction text, relocation symbol)]."""
    listing = subprocess.run([OBJDUMP, "-dr", "--no-show-raw-insn", "--print-imm-hex", "--mattr=+alu32",
                              str(path)], capture_output=True, text=True, check=True).stdout
    out: dict[str, list[tuple[str, str | None]]] = {}
    section = None
    for line in listing.splitlines():
        if m := re.match(r"Disassembly of section (\S+):", line):
            section = m.group(1)
            out[section] = []
        elif m := re.match(r"\s+[0-9a-f]+:\s+R_BPF_\w+\s+(\S+)", line):
            out[section][-1] = (out[section][-1][0], m.group(1))
        elif m := re.match(r"\s+\d+:\s+(.*)", line):
            out[section].append((re.sub(r" <[\w.]+(?:\+0x[0-9a-f]+)?>$", "", m.group(1)), None))
    return out


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump (Debian llvm) is not installed")
def test_clang_object_reads_like_llvm_objdump(clang_object: Path) -> None:
    obj = read_object(clang_object.read_bytes(), str(clang_object))
    theirs = objdump(clang_object)
    assert set(obj.sections) == set(theirs) == {".text", "xdp", "socket"}
    for section, insns in obj.sections.items():
        assert len(insns) == len(theirs[section])
        for insn, (text, symbol) in zip(insns, theirs[section]):
            if symbol is None:
                assert format_instruction(insn, hex=True) == text
            elif insn.reference in obj.data:  # global data: the variable the relocation names
                assert obj.variables[(insn.reference, insn.imm >> 32)] == symbol
            else:
                assert insn.reference == symbol
    assert [(m.name, m.type, m.key_size, m.value_size, m.max_entries, m.key_type) for m in obj.maps] == [
        ("counts", 2, 4, 8, 4, "u32"), ("table", 1, 4, 8, 16, None)]
    assert [p.name for p in obj.programs] == ["xdp_prog", "sock_prog"] and obj.license == "GPL"
    assert set(obj.data) == {".rodata", ".data", ".bss"}


def test_big_endian_clang_object_reads_the_same(clang_object: Path, tmp_path_factory) -> None:
    big = read_object(clang(tmp_path_factory, "bpfeb").read_bytes(), "big.o")
    little = read_object(clang_object.read_bytes(), "little.o")
    assert big.byteorder == "big" and big.maps == little.maps and big.license == little.license
    assert {k: [format_instruction(i) for i in v] for k, v in big.sections.items()} == \
        {k: [format_instruction(i) for i in v] for k, v in little.sections.items()}


def test_disasm_shows_maps_relocations_and_btf(clang_object: Path) -> None:
    proc = cli("disasm", str(clang_object))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert ".map counts, type=array, key=4, value=8, max_entries=4\t// key u32, value u64" in text
    assert "\tr1 = counts ll\n" in text and "\tcall twice\n" in text
    assert "ld_pseudo r1, 2, .rodata\t// limit" in text
    assert ".section xdp\n.globl xdp_prog\nxdp_prog:\n" in text


@root
def test_clang_object_loads_and_runs(clang_object: Path) -> None:
    with load_object(clang_object) as obj:
        assert obj.programs["xdp_prog"].test_run(bytes(64)).retval == 2  # twice(1)
        assert obj.maps["counts"][1] == 1 and obj.maps[".data"][0] == 3 + 7  # total += limit
        assert obj.programs["sock_prog"].test_run(bytes(64)).retval == 7  # table is empty: limit


def test_our_object_has_clang_s_shape(our_object: Path) -> None:
    f = elf.read(our_object.read_bytes(), "count.o")
    assert f.machine == elf.EM_BPF
    names = [s.name for s in f.sections]
    assert {"xdp", "socket", ".text", ".maps", "license", ".BTF", ".relxdp"} <= set(names)
    relocs = {(f.symbols[r.symbol].name, r.type) for r in f.relocations[names.index("xdp")]}
    assert relocs == {("counts", elf.R_BPF_64_64), ("verdict", elf.R_BPF_64_32)}
    obj = read_object(our_object.read_bytes(), "count.o")
    assert [p.name for p in obj.programs] == ["xdp_count", "sock_len"]
    assert obj.maps[0].name == "counts" and obj.maps[0].max_entries == 1


@root
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool (test-only) is not installed")
def test_bpftool_loadall_accepts_our_object(our_object: Path) -> None:
    pin = Path("/sys/fs/bpf") / f"pybpfasm-test-{os.getpid()}"
    try:
        proc = subprocess.run(["bpftool", "prog", "loadall", str(our_object), str(pin)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in pin.iterdir()) == ["sock_len", "xdp_count"]
    finally:
        shutil.rmtree(pin, ignore_errors=True)


@root
def test_our_object_loads_and_runs(our_object: Path) -> None:
    with load_object(our_object) as obj:
        xdp = obj.programs["xdp_count"]
        assert [xdp.test_run(bytes(64)).retval for _ in range(3)] == [2, 2, 2]
        assert obj.maps["counts"][0] == 3
        # a socket filter's skb starts after the Ethernet header test_run puts in front
        assert obj.programs["sock_len"].test_run(bytes(60)).retval == 60 - 14


@root
def test_tp_btf_section_loads_against_kernel_btf(tmp_path: Path) -> None:
    path = tmp_path / "tp.o"
    path.write_bytes(write_object(parse_unit(".section tp_btf/netif_receive_skb\non_rx:\nr0 = 0\nexit")))
    with load_object(path) as obj:
        assert obj.programs["on_rx"].type.name == "TRACING"


@pytest.mark.parametrize("options", [(), ("--labels",), ("--hex", "--labels")])
def test_listing_reassembles_to_the_same_object(our_object: Path, tmp_path: Path, options) -> None:
    listing = tmp_path / "listing.s"
    listing.write_text(cli("disasm", *options, str(our_object)).stdout)
    assert ("goto LBB0_" in listing.read_text()) == ("--labels" in options)
    again = tmp_path / "again.o"
    assert cli("asm", str(listing), "-o", str(again)).returncode == 0
    assert again.read_bytes() == our_object.read_bytes()


def test_big_endian_object_reads_back(tmp_path: Path) -> None:
    source = (HERE / "count.s").read_text()
    little = read_object(write_object(parse_unit(source, "count.s")), "little.o")
    big = read_object(write_object(parse_unit(source, "count.s", "big"), "big"), "big.o")
    assert big.byteorder == "big"
    assert {k: [format_instruction(i) for i in v] for k, v in big.sections.items()} == \
        {k: [format_instruction(i) for i in v] for k, v in little.sections.items()}


@pytest.mark.parametrize("text,message", [
    (".section frob\nf:\nexit", "section 'frob' names no program type"),
    (".section xdp\nexit", "needs a name: a label before its first instruction"),
    (".section xdp\nf:\nr1 = nomap ll\nexit", "'nomap' must be a map defined with .map"),
    (".section xdp\nf:\ncall nowhere\nexit", "call of 'nowhere', which is no function"),
    (".map m, type=frob\n.section xdp\nf:\nexit", "unknown map type 'frob'"),
    (".map m, key=4\n.section xdp\nf:\nexit", "map 'm' needs a type"),
    (".section xdp\nf:\ngoto g\n.text\ng:\nexit", "jump to 'g', which is not in section 'xdp'"),
])
def test_bad_sources_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    src = tmp_path / "bad.s"
    src.write_text(text)
    proc = cli("asm", str(src), "-o", str(tmp_path / "bad.o"))
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_bad_objects_are_one_line(tmp_path: Path, our_object: Path) -> None:
    data = bytearray(our_object.read_bytes())
    for cut in (0x30, 200, len(data) - 10):
        bad = tmp_path / "bad.o"
        bad.write_bytes(data[:cut])
        proc = cli("disasm", str(bad))
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    with pytest.raises(ObjectError, match="no program sections"):
        empty = tmp_path / "empty.o"
        empty.write_bytes(write_object(parse_unit(".text\nf:\nexit")))
        load_object(empty)
