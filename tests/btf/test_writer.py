"""The writer's blobs read back equal with our reader, with bpftool, and load in the kernel."""

from __future__ import annotations

import struct

import pytest

from pybpfasm.btf import (
    BTF,
    BTFBuilder,
    BTFError,
    Func,
    FuncProto,
    Int,
    Linkage,
    Member,
    Param,
    Ptr,
    Struct,
)

from .conftest import bpftool_dump
from .oracle import as_bpftool, normalized
from .samples import PROGRAM_TYPES, program_builder


def test_program_btf_reads_back_identically():
    blob = program_builder().build().btf
    btf = BTF.from_bytes(blob)
    assert [t for _, t in btf.types()] == PROGRAM_TYPES
    assert btf.field("event", "comm[2]").offset == 10
    assert (btf.field("event", "mode").bit_offset, btf.field("event", "mode").bit_size) == (35, 5)
    assert btf.field("event", "raw").offset == 24  # through the anonymous union
    assert str(btf.func("handle_event")) == "int handle_event(struct event *ctx, u32 len)"
    assert btf.type_name(12) == "const char *restrict"


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_both_byte_orders_read_back(byteorder):
    builder = BTFBuilder(byteorder=byteorder)
    for t in PROGRAM_TYPES:
        builder.add(t)
    btf = BTF.from_bytes(builder.build().btf)
    assert btf.byteorder == byteorder
    assert [t for _, t in btf.types()] == PROGRAM_TYPES


def test_bpftool_reads_what_we_wrote(tmp_path):
    path = tmp_path / "prog.btf"
    path.write_bytes(program_builder().build().btf)
    expected = [normalized(as_bpftool(i, t)) for i, t in enumerate(PROGRAM_TYPES, start=1)]
    assert [normalized(t) for t in bpftool_dump(str(path))] == expected


def test_func_and_line_info_records():
    builder = program_builder()
    builder.func_info(0, 23)
    builder.line_info(0, "tool.py", 12, col=4, source="ev.pid = b.pid()")
    builder.line_info(3, "tool.py", 13)
    out = builder.build()
    assert list(struct.iter_unpack("=II", out.func_info)) == [(0, 23)]
    records = list(struct.iter_unpack("=IIII", out.line_info))
    btf = BTF.from_bytes(out.btf)
    assert [(r[0], btf.string(r[1]), btf.string(r[2]), r[3] >> 10, r[3] & 0x3FF) for r in records] == [
        (0, "tool.py", "ev.pid = b.pid()", 12, 4),
        (3, "tool.py", "", 13, 0),
    ]
    assert (out.func_info_rec_size, out.line_info_rec_size) == (8, 16)


def test_writer_rejects_values_that_do_not_fit():
    builder = BTFBuilder()
    with pytest.raises(BTFError, match="bitfield offset/size out of range"):
        builder.add(Struct("s", 4, (Member("x", 1, 1 << 24, 3),)))
    builder.add(Int("huge", 1 << 32, 8))
    with pytest.raises(BTFError, match="does not fit"):
        builder.build()
    with pytest.raises(BTFError, match="out of range"):
        builder.line_info(0, "f.py", 1, col=5000)


def test_kernel_accepts_the_blob():
    sys_layer = pytest.importorskip("pybpfasm.sys")
    out = program_builder().build()
    blob = sys_layer.ffi.from_buffer(out.btf)
    attr = sys_layer.new_attr()
    attr.btf_load.btf = sys_layer.address(blob)
    attr.btf_load.btf_size = len(out.btf)
    try:
        fd = sys_layer.bpf_fd(sys_layer.Cmd.BTF_LOAD, attr)
    except sys_layer.SyscallError as err:
        if err.errno == 1:
            pytest.skip(f"BPF_BTF_LOAD not permitted here: {err}")
        raise
    fd.close()


def test_vmlinux_rewritten_is_read_by_bpftool_as_the_original(kernel_btf, bpftool_types, tmp_path):
    builder = BTFBuilder(byteorder=kernel_btf.byteorder)
    for _, t in kernel_btf.types():
        builder.add(t)
    path = tmp_path / "vmlinux.btf"
    path.write_bytes(builder.build().btf)
    rewritten = bpftool_dump(str(path))
    assert len(rewritten) == len(bpftool_types)
    assert [t for t in rewritten if t != bpftool_types[t["id"]]][:3] == []


def test_split_btf_on_top_of_the_kernel(kernel_btf, tmp_path):
    builder = BTFBuilder(base=kernel_btf)
    skb_ptr = builder.add(Ptr(kernel_btf.lookup("struct sk_buff")))
    u32 = kernel_btf.lookup("u32")
    ctx = builder.add(Struct("my_ctx", 16, (Member("skb", skb_ptr, 0), Member("mark", u32, 64))))
    proto = builder.add(FuncProto(u32, (Param("ctx", builder.add(Ptr(ctx))),)))
    builder.add(Func("my_prog", proto, Linkage.GLOBAL))
    path = tmp_path / "split.btf"
    path.write_bytes(builder.build().btf)

    split = BTF.from_file(str(path), base=kernel_btf)
    assert split.first_id == kernel_btf.last_id + 1
    assert split.source == f"external BTF {path}"
    assert split.lookup("struct my_ctx") == ctx
    field = split.field("my_ctx", "skb.len")
    assert field.steps[0] == (0, True)
    assert field.offset == kernel_btf.field("sk_buff", "len").offset
    assert str(split.func("my_prog")) == "u32 my_prog(struct my_ctx *ctx)"
    dumped = bpftool_dump(str(path), base="/sys/kernel/btf/vmlinux")
    assert dumped[-1]["name"] == "my_prog" and dumped[-1]["id"] == split.last_id
    assert isinstance(split.type(u32), type(kernel_btf.type(u32)))
    assert isinstance(kernel_btf.type(kernel_btf.resolve(u32)), Int)
