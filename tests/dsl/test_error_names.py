"""Unknown names and misuse in a program body: one line that names the user's line and
offers the right name; suggestions are computed only when an error is shown."""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys

import pytest

import pybpfasm
from pybpfasm.btf import read_format
from pybpfasm.dsl import Collection, HashMap, Record, char, tracepoint, u32, u64
from pybpfasm.dsl.builder import Builder
from pybpfasm.dsl.context import (
    ArgsContext,
    ContextError,
    PacketContext,
    TracepointContext,
    entry,
    function_args,
)
from pybpfasm.dsl.errors import DSLTypeError, UnknownName, _internal
from pybpfasm.dsl.types import Space
from pybpfasm.errors import BPFError

HERE = __file__
counts = HashMap(u32, u64, 16, name="err_counts")


class Event(Record):
    pid: u32
    comm: char[16]


def next_line() -> int:
    """The line after the caller's: where the statement under test is."""
    return sys._getframe(1).f_lineno + 1


def assert_names(err: BaseException, line: int) -> str:
    """The error's text, after checking that it is one line starting with HERE:line."""
    text = str(err)
    assert isinstance(err, BPFError)
    assert "\n" not in text
    assert text.startswith(f"{HERE}:{line}: "), text
    return text


def listed(text: str, what: str = "fields") -> list[str]:
    match = re.search(rf"\({what}: ([^)]*)\)", text)
    assert match, text
    return match.group(1).split(", ")


def tracepoint_ctx(category: str = "skb", event: str = "kfree_skb") -> tuple[Builder, TracepointContext]:
    b = Builder("tracepoint")
    return b, TracepointContext(b, entry(b), category, event)


def tracefs_format(category: str, event: str):
    try:
        return read_format(category, event)
    except BPFError as err:
        pytest.skip(f"no tracefs format for {category}:{event}: {err}")


# -- tracepoint fields -------------------------------------------------------------------
def test_tracepoint_field_typo():
    b, ctx = tracepoint_ctx()
    with pytest.raises(UnknownName) as err:
        line = next_line()
        ctx.reasn
    text = assert_names(err.value, line)
    assert "has no field 'reasn'; did you mean reason?" in text
    fields = listed(text)
    assert {"skbaddr", "protocol", "reason"} <= set(fields)
    assert not {"ent", "__data"} & set(fields)
    assert not [f for f in fields if f.startswith("common_")]


def test_common_fields_are_suggested_only_when_close():
    b, ctx = tracepoint_ctx()
    with pytest.raises(UnknownName) as err:
        line = next_line()
        ctx.comon_pid
    assert "did you mean common_pid" in assert_names(err.value, line)
    with pytest.raises(UnknownName) as err:
        ctx.protocl
    assert "did you mean protocol?" in str(err.value)


def test_common_fields_read_the_header_with_btf_too():
    """``ctx.common_pid`` is ``ent.pid`` in a BTF layout: the offset the format file gives."""
    fmt = tracefs_format("skb", "kfree_skb")
    b, ctx = tracepoint_ctx()
    assert ctx.source.startswith("BTF")
    for name in ("common_pid", "common_type", "common_flags", "common_preempt_count"):
        assert ctx.has_field(name)
        assert ctx.__getattr__(name).off == fmt.field(name).offset, name


def test_field_typo_with_a_tracefs_layout():
    """netif_receive_skb is an event of the net_dev_template class: no BTF struct of its own."""
    tracefs_format("net", "netif_receive_skb")
    b, ctx = tracepoint_ctx("net", "netif_receive_skb")
    assert ctx.source.startswith("tracefs")
    with pytest.raises(UnknownName) as err:
        line = next_line()
        ctx.skbadr
    text = assert_names(err.value, line)
    assert "did you mean skbaddr?" in text
    fields = listed(text)
    assert "skbaddr" in fields and not [f for f in fields if f.startswith("common_")]
    assert ctx.common_pid.off == read_format("net", "netif_receive_skb").field("common_pid").offset


@pytest.mark.parametrize("category, event", [("skb", "kfree_skbb"), ("skbb", "kfree_skb")])
def test_unknown_tracepoint(category: str, event: str):
    """A misspelled event or category; BTF has a struct for kfree_skb whatever the category."""
    tracefs_format("skb", "kfree_skb")
    b = Builder("tracepoint")
    with pytest.raises(ContextError) as err:
        line = next_line()
        TracepointContext(b, entry(b), category, event)
    assert f"no tracepoint {category}:{event}" in assert_names(err.value, line)
    assert "did you mean skb:kfree_skb" in str(err.value)


def test_store_into_a_tracepoint_context():
    b, ctx = tracepoint_ctx()
    with pytest.raises(DSLTypeError, match="cannot store into the context of a tracepoint program") as err:
        line = next_line()
        ctx.protocol = 1
    assert_names(err.value, line)


def test_misspelled_field_through_a_loaded_program():
    """The error names the line of the program body, not the eDSL or the loader."""
    lines = {}

    @tracepoint("skb", "kfree_skb")
    def typo(b, ctx):
        lines["typo"] = next_line()
        counts.increment(b, ctx.reson)

    with Collection() as coll, pytest.raises(UnknownName) as err:
        coll.load(typo)
    assert "did you mean reason?" in assert_names(err.value, lines["typo"])


# -- methods and fields of values ----------------------------------------------------------
def test_method_typo_on_an_enum_field():
    b, ctx = tracepoint_ctx()
    with pytest.raises(UnknownName) as err:
        line = next_line()
        ctx.reason.inn_(1, 2)
    text = assert_names(err.value, line)
    assert "enum skb_drop_reason has no method 'inn_'; did you mean in_?" in text
    assert {"in_", "to_host", "cast", "test"} <= set(listed(text, "methods"))


def test_struct_field_typo_and_method_typo():
    b, ctx = tracepoint_ctx()
    skb = ctx.skbaddr.cast("struct sk_buff")
    with pytest.raises(UnknownName) as err:
        line = next_line()
        skb.lenn
    assert "struct sk_buff has no field 'lenn'; did you mean len?" in assert_names(err.value, line)
    with pytest.raises(UnknownName) as err:
        line = next_line()
        skb.cats("struct iphdr")
    text = assert_names(err.value, line)
    assert "struct sk_buff has no method 'cats'; did you mean cast" in text
    assert "cast" in listed(text, "methods")


def test_method_typo_on_a_scalar_value():
    b, ctx = tracepoint_ctx()
    with pytest.raises(UnknownName) as err:
        line = next_line()
        ctx.protocol.rvalue().to_hots()
    assert "has no method 'to_hots'; did you mean to_host?" in assert_names(err.value, line)


def test_field_of_a_void_pointer():
    b, ctx = tracepoint_ctx()
    with pytest.raises(UnknownName) as err:
        line = next_line()
        ctx.skbaddr.rvalue().len
    assert "a void pointer has no fields: .cast() it to a type first" in assert_names(err.value, line)


def test_record_field_typo():
    b, _ = tracepoint_ctx()
    ev = b.stack(Event, "event")
    with pytest.raises(UnknownName) as err:
        line = next_line()
        ev.pdi = 1
    text = assert_names(err.value, line)
    assert "record Event has no field 'pdi'; did you mean pid?" in text
    assert listed(text) == ["pid", "comm"]


def test_unknown_type_name():
    b, ctx = tracepoint_ctx()
    with pytest.raises(BPFError) as err:
        line = next_line()
        ctx.skbaddr.cast("struct sk_bufff")
    assert "did you mean: sk_buff" in assert_names(err.value, line)


def test_argument_typo():
    """fentry arguments by name (the program is only built: fentry cannot load on every kernel)."""
    b = Builder("fentry")
    types, names = function_args(b, "tcp_v4_rcv")
    ctx = ArgsContext(b, entry(b), types, names, Space.BTF)
    with pytest.raises(UnknownName) as err:
        line = next_line()
        ctx.skbb
    text = assert_names(err.value, line)
    assert "has no argument 'skbb'; did you mean skb?" in text
    assert "skb" in listed(text, "arguments")


def test_assigning_an_argument():
    b = Builder("fentry")
    types, names = function_args(b, "tcp_v4_rcv")
    ctx = ArgsContext(b, entry(b), types, names, Space.BTF)
    with pytest.raises(DSLTypeError, match="ctx.skb is a value the program was given") as err:
        line = next_line()
        ctx.skb = 0
    assert_names(err.value, line)


def test_xdp_context_field_typo():
    b = Builder("xdp")
    ctx = PacketContext(b, entry(b), "struct xdp_md")
    with pytest.raises(UnknownName) as err:
        line = next_line()
        ctx.data_ed
    assert "(struct xdp_md) has no field 'data_ed'; did you mean data_end" in assert_names(err.value, line)


# -- helpers ---------------------------------------------------------------------------------
def test_helper_typo():
    b, _ = tracepoint_ctx()
    with pytest.raises(UnknownName) as err:
        line = next_line()
        b.ktime_get_nsec()
    assert "no BPF helper or Builder method 'ktime_get_nsec'" in assert_names(err.value, line)
    assert "did you mean ktime_get_ns " in str(err.value)
    with pytest.raises(UnknownName) as err:
        line = next_line()
        b.call("bpf_ktime_get_nsec")
    assert "no BPF helper 'bpf_ktime_get_nsec' in this kernel; did you mean ktime_get_ns" in \
        assert_names(err.value, line)


def test_builder_method_typo():
    b, _ = tracepoint_ctx()
    with pytest.raises(UnknownName) as err:
        line = next_line()
        b.retrun_(0)
    assert "did you mean return_?" in assert_names(err.value, line)


def test_missing_helper_arguments_are_named():
    b, _ = tracepoint_ctx()
    buf = b.stack(char[16], "buffer")
    with pytest.raises(DSLTypeError) as err:
        line = next_line()
        b.probe_read_kernel(buf)
    assert "bpf_probe_read_kernel(dst, size, unsafe_ptr) takes 3 arguments, got 1" in \
        assert_names(err.value, line)


# -- memory ----------------------------------------------------------------------------------
def test_maybe_null_pointer():
    b, _ = tracepoint_ctx()
    value = counts.lookup_ptr(b, 1)
    with pytest.raises(DSLTypeError) as err:
        line = next_line()
        b.return_(value.deref())
    text = assert_names(err.value, line)
    assert "this pointer may be NULL" in text and "non_null()" in text


def test_maybe_null_record_pointer_field():
    """A real field through an untested pointer is the NULL error; a typo is a name error."""
    b, _ = tracepoint_ctx()
    events = HashMap(u32, Event, 4, name="err_events")
    ptr = events.lookup_ptr(b, 1)
    with pytest.raises(DSLTypeError, match="may be NULL") as err:
        line = next_line()
        ptr.pid
    assert_names(err.value, line)
    with pytest.raises(UnknownName, match="did you mean pid"):
        ptr.pdi


def test_store_into_kernel_memory():
    b, ctx = tracepoint_ctx()
    skb = ctx.skbaddr.cast("struct sk_buff")
    with pytest.raises(DSLTypeError) as err:
        line = next_line()
        skb.len = 5
    text = assert_names(err.value, line)
    assert "cannot store into kernel memory" in text and "b.stack" in text


def test_string_longer_than_the_array():
    b, _ = tracepoint_ctx()
    ev = b.stack(Event, "event")
    with pytest.raises(DSLTypeError) as err:
        line = next_line()
        ev.comm == "a name of more than 16 bytes"
    assert "never equals a char[16]" in assert_names(err.value, line)
    with pytest.raises(DSLTypeError, match="only a char array compares with a string"):
        ev.pid == "1"


def test_empty_membership_test():
    b, ctx = tracepoint_ctx()
    with pytest.raises(DSLTypeError, match="needs at least one value") as err:
        line = next_line()
        ctx.protocol.in_()
    assert_names(err.value, line)


# -- exception types and cost ------------------------------------------------------------------
def test_exception_types():
    """The type error is a TypeError, unknown names are AttributeErrors (hasattr works)."""
    b, ctx = tracepoint_ctx()
    assert issubclass(DSLTypeError, TypeError) and issubclass(UnknownName, AttributeError)
    assert not hasattr(ctx, "no_such_field") and hasattr(ctx, "reason")
    assert not hasattr(ctx.skbaddr.cast("struct sk_buff"), "no_such_field")


def test_suggestions_are_computed_only_when_shown(monkeypatch):
    calls = []
    real = difflib.get_close_matches
    monkeypatch.setattr(difflib, "get_close_matches", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    b, ctx = tracepoint_ctx()
    fmt = tracefs_format("skb", "kfree_skb")
    assert not ctx.has_field("no_such_field") and not fmt.has_field("no_such_field")
    assert not hasattr(ctx, "no_such_field") and not hasattr(ctx.reason, "no_such_method")
    errors = []
    for attempt in (lambda: ctx.reasn, lambda: b.ktime_get_nsec, lambda: fmt.field("reasn"),
                    lambda: ctx.reason.inn_):
        try:
            attempt()
        except BPFError as err:
            errors.append(err)
    assert len(errors) == 4 and calls == []
    assert all("did you mean" in str(err) for err in errors)
    assert len(calls) == 4



def test_which_files_are_the_users():
    """Library frames are skipped when naming the user's line; tools shipped in the package are user code."""
    package = os.path.dirname(pybpfasm.__file__)
    assert _internal(os.path.join(package, "dsl", "values.py")) and _internal(contextlib.__file__)
    assert _internal(os.path.join(package, "btf", "fields.py"))
    assert not _internal(os.path.join(package, "tools", "dropmon.py"))
    assert not _internal(os.path.join(package, "lab", "netns", "monitor.py"))
    assert not _internal(HERE)
