"""tracefs format files on this kernel, against the BTF trace_event_raw_* structs."""

from __future__ import annotations

import os

import pytest

from pybpfasm.btf import BTFError, UnknownField, parse_format, read_format
from pybpfasm.btf.tracefs import split_data_loc
from pybpfasm.kernel import TRACEFS_MOUNTS

#: tracepoint -> the event class whose trace_event_raw_<class> struct is its context
#: (None: syscalls use struct syscall_trace_enter, whose argument fields are not named)
EVENTS = {
    ("skb", "kfree_skb"): "kfree_skb",
    ("net", "netif_receive_skb"): "net_dev_template",
    ("sched", "sched_process_exec"): "sched_process_exec",
    ("syscalls", "sys_enter_openat"): None,
}
COMMON = {"common_type": "ent.type", "common_flags": "ent.flags",
          "common_preempt_count": "ent.preempt_count", "common_pid": "ent.pid"}


@pytest.fixture(scope="module", autouse=True)
def tracefs():
    if not any(os.path.isdir(os.path.join(root, "events")) for root in TRACEFS_MOUNTS):
        pytest.skip("tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing)")


@pytest.mark.parametrize("event", list(EVENTS), ids=":".join)
def test_format_parses(event):
    fmt = read_format(*event)
    assert fmt.name == event[1] and fmt.id and fmt.id > 0
    assert fmt.source.startswith("tracefs format /sys/kernel")
    assert [f.path for f in fmt.fields()][:4] == list(COMMON)
    assert fmt.field("common_pid").signed and fmt.field("common_pid").size == 4


@pytest.mark.parametrize("event", [e for e, c in EVENTS.items() if c], ids=":".join)
def test_offsets_equal_btf_trace_event_struct(kernel_btf, event):
    fmt = read_format(*event)
    layout = kernel_btf.trace_event(EVENTS[event])
    for field in fmt.fields():
        btf_path = COMMON.get(field.path) or (f"__data_loc_{field.path}" if field.data_loc else field.path)
        btf_field = layout.field(btf_path)
        assert (field.offset, field.size) == (btf_field.offset, btf_field.size), field.path


def test_syscall_format_matches_syscall_trace_enter(kernel_btf):
    fmt = read_format("syscalls", "sys_enter_openat")
    args = kernel_btf.field("syscall_trace_enter", "args")
    assert fmt.field("__syscall_nr").offset == kernel_btf.field("syscall_trace_enter", "nr").offset
    assert fmt.field("dfd").offset == args.offset
    assert fmt.field("filename").offset == args.offset + 8


def test_data_loc_and_arrays():
    exec_fmt = read_format("sched", "sched_process_exec")
    assert exec_fmt.field("filename").data_loc and exec_fmt.field("filename").size == 4
    switch = read_format("sched", "sched_switch")
    comm = switch.field("prev_comm")
    assert (comm.size, comm.type_name) == (16, "char[16]")
    third = switch.field("prev_comm[3]")
    assert (third.offset, third.size, third.type_name) == (comm.offset + 3, 1, "char")


def test_errors_are_clear():
    fmt = read_format("skb", "kfree_skb")
    assert fmt.has_field("reason") and not fmt.has_field("reasons")
    with pytest.raises(UnknownField, match=r"no field 'reasons'; did you mean reason"):
        fmt.field("reasons")
    with pytest.raises(BTFError, match="no tracepoint skb:no_such_event"):
        read_format("skb", "no_such_event")
    with pytest.raises(BTFError, match="no 'field:' lines"):
        parse_format("name: x\nID: 1\n")


def test_parse_format_text():
    text = (
        "name: demo\nID: 7\nformat:\n"
        "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
        "\tfield:u8 saddr[4];\toffset:8;\tsize:4;\tsigned:0;\n"
        "\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;\n"
        "\tfield:long delta;\toffset:16;\tsize:8;\tsigned:1;\n"
    )
    fmt = parse_format(text, "test")
    assert (fmt.name, fmt.id, fmt.size) == ("demo", 7, 24)
    assert fmt.field("saddr").type_name == "u8[4]"
    assert fmt.field("saddr[2]").offset == 10
    assert fmt.field("name").data_loc and fmt.field("delta").signed


def test_split_data_loc():
    assert split_data_loc(0x0010_0020) == (0x20, 0x10)
