"""Error messages: suggestions worked out only when shown, bounded inputs refused in one line."""

from __future__ import annotations

import pytest

from pybpfasm.btf import BTF, BTFError, Func, FuncProto, Linkage, Param, Ptr, UnknownField
from pybpfasm.btf import fields as fields_module

from .samples import program_builder


@pytest.fixture
def btf() -> BTF:
    return BTF.from_bytes(program_builder().build().btf)


def test_a_missed_field_costs_no_suggestions_until_shown(btf, monkeypatch):
    calls = []
    real = fields_module.difflib.get_close_matches
    monkeypatch.setattr(fields_module.difflib, "get_close_matches", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert not btf.has_field("event", "pidd")
    with pytest.raises(UnknownField) as caught:
        btf.field("event", "pidd")
    assert calls == []
    message = str(caught.value)
    assert len(calls) == 1
    assert message == ("struct event has no field 'pidd' (in path 'pidd'); did you mean pid? "
                       "its fields: pid, flags, mode, comm, addr, raw")
    assert str(caught.value) == message and len(calls) == 1


def test_a_missed_type_builds_no_name_index_until_shown(btf, monkeypatch):
    calls = []
    real = BTF.names
    monkeypatch.setattr(BTF, "names", lambda self: calls.append(1) or real(self))
    with pytest.raises(BTFError) as caught:
        btf.lookup("struct evnt")
    assert calls == []
    assert str(caught.value) == "no struct named 'evnt' in BTF bytes (did you mean: event?)"
    assert calls == [1]


@pytest.mark.parametrize("path", ["comm[" + "9" * 5000 + "]", "comm[4294967296]"])
def test_huge_indexes_are_one_error(btf, path):
    with pytest.raises(BTFError, match=r"^bad field path .* is past any BTF array \(at most 4294967295\)$"):
        btf.field("event", path)


def test_function_pointer_parameters_are_spelt_as_c():
    b = program_builder()
    void_ptr = b.add(Ptr(0))
    callback = b.add(Ptr(b.add(FuncProto(2, (Param("", void_ptr),)))))
    b.add(Func("walk", b.add(FuncProto(2, (Param("cb", callback), Param("", 0)))), Linkage.GLOBAL))
    btf = BTF.from_bytes(b.build().btf)
    assert str(btf.func("walk")) == "int walk(int (*cb)(void *), ...)"


@pytest.mark.parametrize("path", ["comm[\u0663]", "comm[\uff13]", "pid\u00a0x"])
def test_paths_take_ascii_digits_only(btf, path):
    with pytest.raises(BTFError, match=r"^bad field path "):
        btf.field("event", path)
