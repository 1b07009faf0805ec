"""The reader on truncated or corrupted BTF: a BTFError or a valid answer, never another exception."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfasm.btf import BTF, BTFError, Enum, Enum64, Func, Struct, StructLayout, Union

from .samples import program_builder

BLOB = program_builder().build().btf


def exercise(blob: bytes) -> None:
    """Open ``blob`` and, if it opens, ask everything about it."""
    try:
        btf = BTF.from_bytes(blob)
    except BTFError:
        return
    ask_everything(btf)


def ask_everything(btf: BTF) -> None:
    """Ask every question the API answers about every type of ``btf``."""
    for type_id in range(btf.last_id + 2):
        for question in (btf.type, btf.type_name, btf.sizeof, btf.resolve, btf.complete):
            with contextlib.suppress(BTFError):
                question(type_id)
        with contextlib.suppress(BTFError):
            t = btf.type(btf.resolve(type_id))
            if isinstance(t, (Struct, Union)):
                layout = StructLayout(btf, btf.resolve(type_id))
                for member in t.members:
                    layout.has_field(member.name or "x")
                layout.fields()
            elif isinstance(t, (Enum, Enum64)) and t.name:
                btf.enum(t.name)
            elif isinstance(t, Func):
                btf.func(t.name)
    with contextlib.suppress(BTFError):
        btf.names()
        btf.lookup("event")


def test_the_sample_is_valid():
    btf = BTF.from_bytes(BLOB)
    assert btf.struct("event").size == 32


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(BLOB) - 1))
def test_truncated(length):
    with pytest.raises(BTFError):
        BTF.from_bytes(BLOB[:length])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(BLOB) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_bytes(changes):
    blob = bytearray(BLOB)
    for pos, value in changes:
        blob[pos] = value
    exercise(bytes(blob))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, (len(BLOB) - 24) // 4 - 1), st.integers(0, 2**32 - 1)), min_size=1, max_size=4))
def test_corrupted_words(changes):
    """Whole 32-bit words replaced: ids, counts and offsets far out of range."""
    blob = bytearray(BLOB)
    for index, value in changes:
        struct.pack_into("=I", blob, 24 + 4 * index, value)
    exercise(bytes(blob))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=256))
def test_random_bytes_after_a_valid_header(tail):
    header = struct.pack("=HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(tail) // 2 // 4 * 4, len(tail) // 2 // 4 * 4, len(tail) - len(tail) // 2 // 4 * 4)
    exercise(header + tail)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_elf(clang_object, tmp_path_factory, data):
    """An ELF object (from clang) cut short or with bytes changed: BTFError or a valid answer."""
    raw = bytearray(Path(clang_object[1]).read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    for pos, value in data.draw(st.lists(st.tuples(st.integers(0, max(len(raw) - 1, 0)), st.integers(0, 255)), max_size=6), label="changes"):
        if raw:
            raw[pos] = value
    path = tmp_path_factory.mktemp("elf") / "x.o"
    path.write_bytes(bytes(raw))
    try:
        btf = BTF.from_file(str(path))
    except BTFError:
        return
    ask_everything(btf)
