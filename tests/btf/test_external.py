"""External BTF: ELF objects from clang (both byte orders), module BTF, hand-made blobs."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from pybpfasm.btf import BTF, BTFError, Kind, Struct

from .conftest import bpftool_dump
from .oracle import as_bpftool, normalized


def test_elf_btf_section_matches_bpftool(clang_object):
    target, path = clang_object
    btf = BTF.from_file(path)
    assert btf.byteorder == ("little" if target == "bpfel" else "big")
    assert btf.source == f"external BTF {path}"
    assert [normalized(as_bpftool(i, t)) for i, t in btf.types()] == [normalized(t) for t in bpftool_dump(path)]


def test_elf_btf_answers_questions(clang_object):
    _, path = clang_object
    btf = BTF.from_file(path)
    flags = btf.field("event", "flags")
    assert (flags.bit_offset, flags.bit_size) == (32, 3)
    assert btf.field("event", "delta").offset == 24
    assert btf.enum("verdict") == {"PASS": 0, "DROP": 7}
    assert str(btf.func("handle")) == "int handle(struct event *e, enum verdict v)"


def test_elf_without_btf(tmp_path):
    path = tmp_path / "python"
    path.write_bytes(Path(sys.executable).read_bytes())
    with pytest.raises(BTFError, match=r"no \.BTF section"):
        BTF.from_file(str(path))


def test_kernel_without_btf_points_to_btf_file():
    with pytest.raises(BTFError, match=r"CONFIG_DEBUG_INFO_BTF.*--btf FILE"):
        BTF.kernel("/nonexistent/vmlinux")


def test_missing_module_btf(kernel_btf):
    with pytest.raises(BTFError, match="cannot read module BTF /sys/kernel/btf/no_such_module"):
        BTF.module("no_such_module")


def _raw_btf(types: bytes, strings: bytes) -> bytes:
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_repeated_strings_are_searched():
    """A string table that repeats 'x': its first copy names a member, its second the struct."""
    strings = b"\0x\0int\0x\0"
    int_type = struct.pack("<IIII", 3, Kind.INT << 24, 4, 32)
    struct_x = struct.pack("<III", 7, Kind.STRUCT << 24 | 1, 4) + struct.pack("<III", 1, 1, 0)
    btf = BTF.from_bytes(_raw_btf(int_type + struct_x, strings))
    assert btf.lookup("struct x") == 2
    assert btf.type(2) == Struct("x", 4, btf.type(2).members)
    assert btf.field("x", "x").size == 4


def test_bad_headers_say_what_is_wrong():
    with pytest.raises(BTFError, match="not BTF"):
        BTF.from_bytes(b"\0" * 32)
    with pytest.raises(BTFError, match="too short"):
        BTF.from_bytes(b"\x9f\xeb")
    with pytest.raises(BTFError, match="unknown BTF kind 31"):
        BTF.from_bytes(_raw_btf(struct.pack("<III", 0, 31 << 24, 0), b"\0"))
    with pytest.raises(BTFError, match="runs past the end"):
        BTF.from_bytes(_raw_btf(struct.pack("<III", 0, Kind.STRUCT << 24 | 5, 0), b"\0"))
    with pytest.raises(BTFError, match="must start with an empty string"):
        BTF.from_bytes(_raw_btf(b"", b"x\0"))
