"""Our enum tables and struct layouts agree with the running kernel's BTF."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pybpfasm.btf import BTF, KERNEL_BTF
from pybpfasm.btf.types import Struct, Union
from pybpfasm.sys.abi import ffi
from pybpfasm.sys.consts import KERNEL_ENUMS


@pytest.fixture(scope="module")
def kernel_btf() -> BTF:
    if not os.path.exists(KERNEL_BTF):
        pytest.skip(f"no {KERNEL_BTF}: kernel built without CONFIG_DEBUG_INFO_BTF")
    return BTF.kernel()


@pytest.mark.parametrize("enum_name", sorted(KERNEL_ENUMS))
def test_enum_table_matches_kernel(kernel_btf: BTF, enum_name: str) -> None:
    table, prefix = KERNEL_ENUMS[enum_name]
    kernel = kernel_btf.enum(enum_name)
    ours = {prefix + member.name: member.value for member in table}
    assert {name: kernel[name] for name in ours if name in kernel} == ours
    # every kernel value up to our last one has a name in our table (newer kernels may add more)
    known_values = {v for n, v in kernel.items() if not n.startswith("__MAX")}
    assert {v for v in known_values if v <= max(ours.values())} == set(ours.values())


def _members(btf: BTF, type_id: int, base: int = 0) -> dict[str, int]:
    """name -> byte offset of every member, anonymous members flattened."""
    out: dict[str, int] = {}
    for m in btf.type(btf.resolve(type_id)).members:
        if m.bitfield_size:
            continue
        if m.name:
            out[m.name] = base + m.bit_offset // 8
        else:
            out.update(_members(btf, m.type_id, base + m.bit_offset // 8))
    return out


def _cffi_members(ctype: Any) -> dict[str, int]:
    """name -> byte offset of every non-bitfield member of a cffi struct (or its name)."""
    out: dict[str, int] = {}
    for name, field in (ffi.typeof(ctype) if isinstance(ctype, str) else ctype).fields:
        if field.bitsize != -1:
            continue
        if name:
            out[name] = field.offset
    return out


@pytest.mark.parametrize("struct", ["bpf_prog_info", "bpf_map_info", "perf_event_attr"])
def test_struct_layout_matches_kernel(kernel_btf: BTF, struct: str) -> None:
    kernel = _members(kernel_btf, kernel_btf.lookup(f"struct {struct}"))
    ours = _cffi_members(f"struct {struct}")
    assert ours, struct
    assert {n: kernel.get(n) for n in ours if not n.startswith("__")} == {
        n: o for n, o in ours.items() if not n.startswith("__")
    }


def test_bpf_attr_members_match_kernel(kernel_btf: BTF) -> None:
    """Each named member of our union bpf_attr has the layout of the kernel's member with its fields."""
    union = kernel_btf.type(kernel_btf.lookup("union bpf_attr"))
    assert isinstance(union, Union)
    kernel_layouts = []
    for m in union.members:
        kernel_layouts.append(_members(kernel_btf, m.type_id))
    for name, field in ffi.typeof("union bpf_attr").fields:
        ours = _cffi_members(field.type)
        match = [k for k in kernel_layouts if all(k.get(n) == o for n, o in ours.items())]
        assert match, f"bpf_attr.{name} matches no kernel member: {ours}"
    assert ffi.sizeof("union bpf_attr") <= union.size
    assert isinstance(kernel_btf.type(kernel_btf.lookup("struct bpf_prog_info")), Struct)
