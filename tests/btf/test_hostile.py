"""Crafted type graphs (valid BTF records, hostile shapes): bounded time and memory, no error but BTFError.

Shapes that used to expand without limit: anonymous structs nested in
anonymous structs (shared, so the paths double at each level), prototypes
whose parameters point at prototypes, cycles through pointers, typedefs and
anonymous members, and vlen at its 65535 maximum. Every question the API
answers is asked about every type, and the ``btf`` command runs on the file.

``PYBPFASM_FUZZ_LONG=1`` runs 10,000 graphs per test instead of a few hundred.
"""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfasm.btf import (
    BTF,
    Array,
    BTFBuilder,
    BTFError,
    Const,
    Func,
    FuncProto,
    Fwd,
    Int,
    Linkage,
    Member,
    Param,
    Ptr,
    Struct,
    StructLayout,
    Type,
    Typedef,
    Union,
)
from pybpfasm.btf.funcs import signature
from pybpfasm.btf.kinds import HEADER_FORMAT, HEADER_SIZE, MAGIC, VERSION, Kind, info_word
from pybpfasm.btf.limits import MAX_MEMBERS
from pybpfasm.cli import main


LONG = os.environ.get("PYBPFASM_FUZZ_LONG") == "1"
#: CPU seconds (not wall: CI machines are shared), generous under tracemalloc; the unbounded code took minutes
MAX_SECONDS = 20.0
MAX_PEAK = 128 << 20


def fuzz(examples: int) -> Callable:
    return settings(max_examples=10_000 if LONG else examples, deadline=None, derandomize=not LONG,
                    suppress_health_check=list(HealthCheck))


def bounded(run: Callable[[], object]) -> None:
    """Run ``run``: BTFError is an answer, any other exception fails, and so do CPU time and memory past the bounds."""
    tracemalloc.start()
    start = time.process_time()
    try:
        run()
    except BTFError:
        pass
    finally:
        elapsed = time.process_time() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, f"{elapsed:.1f} s"
    assert peak < MAX_PEAK, f"{peak >> 20} MiB"


def blob(types: list[Type]) -> bytes:
    b = BTFBuilder()
    for t in types:
        b.add(t)
    return b.build().btf


def answer(question: Callable, *args: object) -> None:
    """Ask; a BTFError is an answer, and its message (worked out when shown) must be bounded too."""
    try:
        question(*args)
    except BTFError as err:
        assert str(err)


def every_question(data: bytes) -> None:
    """Every question about every type (a few member names per struct: each is linear in the struct)."""
    btf = BTF.from_bytes(data)
    for type_id in range(btf.last_id + 2):
        for question in (btf.type, btf.type_name, btf.sizeof, btf.resolve, btf.complete):
            answer(question, type_id)
        answer(btf.type_name, type_id, "name")
        try:
            t = btf.type(btf.resolve(type_id))
        except BTFError:
            continue
        if isinstance(t, (Struct, Union)):
            layout = StructLayout(btf, btf.resolve(type_id))
            for name in [m.name or "x" for m in t.members[:3]] + ["missing"]:
                answer(layout.has_field, name)
                answer(layout.field, name)
                answer(layout.field, f"{name}[1].{name}")
            answer(layout.fields)
        elif isinstance(t, Func):
            answer(signature, btf, btf.resolve(type_id))
    answer(btf.lookup, "struct missing")
    answer(btf.struct, "top")


# --- the shapes ------------------------------------------------------------------------

INT = Int("int", 4, 32)  # always id 1


def nested_anonymous(depth: int, fan: int, named: int) -> list[Type]:
    """A struct of ``fan`` anonymous members of a struct of ``fan`` anonymous members ... ``depth`` deep."""
    types: list[Type] = [INT, Struct("leaf", 4, tuple(Member(f"x{i}", 1, 0) for i in range(named)))]
    for level in range(depth):
        name = "top" if level == depth - 1 else ""
        types.append(Struct(name, 4, tuple(Member("", len(types), 0) for _ in range(fan))))
    return types


def prototype_chain(depth: int, fan: int) -> list[Type]:
    """FUNC f whose prototype takes ``fan`` pointers to a prototype that takes ``fan`` pointers ..."""
    types: list[Type] = [INT, FuncProto(1, ())]
    for _ in range(depth):
        types.append(Ptr(len(types)))
        types.append(FuncProto(1, tuple(Param(f"a{i}", len(types)) for i in range(fan))))
    types.append(Func("f", len(types), Linkage.GLOBAL))
    types.append(Ptr(len(types) - 1))
    types.append(Struct("holder", 8, (Member("fp", len(types), 0),)))
    return types


def wide(count: int, params: bool) -> list[Type]:
    """vlen ``count``: a struct's members or a prototype's parameters."""
    if params:
        return [INT, FuncProto(1, tuple(Param(f"p{i}", 1) for i in range(count))), Func("f", 2, Linkage.GLOBAL)]
    return [INT, Struct("w", 4 * count, tuple(Member(f"m{i}", 1, 32 * i) for i in range(count)))]


IDS = st.integers(0, 40)
NAMES = st.sampled_from(["", "", "a", "b", "x", "task"])


def one_type() -> st.SearchStrategy[Type]:
    """Any type whose references may point anywhere, itself and ids that do not exist included."""
    member = st.builds(Member, NAMES, IDS, st.integers(0, 64).map(lambda b: b * 8))
    return st.one_of(
        st.builds(Ptr, IDS),
        st.builds(Typedef, NAMES, IDS),
        st.builds(Const, IDS),
        st.builds(Array, IDS, st.just(1), st.integers(0, (1 << 32) - 1)),
        st.builds(Struct, NAMES, st.integers(0, 64), st.lists(member, max_size=6).map(tuple)),
        st.builds(Union, NAMES, st.integers(0, 64), st.lists(member, max_size=6).map(tuple)),
        st.builds(FuncProto, IDS, st.lists(st.builds(Param, NAMES, IDS), max_size=6).map(tuple)),
        st.builds(Func, st.sampled_from(["f", "g"]), IDS, st.just(Linkage.GLOBAL)),
        st.builds(Fwd, NAMES, st.booleans()),
    )


# --- the tests -------------------------------------------------------------------------

@fuzz(30)
@given(st.integers(1, 40), st.integers(1, 4), st.integers(0, 3))
def test_nested_anonymous_members(depth, fan, named):
    bounded(lambda: every_question(blob(nested_anonymous(depth, fan, named))))


@fuzz(40)
@given(st.integers(1, 70), st.integers(1, 4))
def test_prototype_chains(depth, fan):
    bounded(lambda: every_question(blob(prototype_chain(depth, fan))))


@fuzz(300)
@given(st.lists(one_type(), min_size=1, max_size=40))
def test_random_graphs(types):
    """Cycles through pointers, typedefs, arrays and anonymous members, references past the end."""
    bounded(lambda: every_question(blob([INT, *types])))


@pytest.mark.parametrize("params", [False, True], ids=["members", "params"])
def test_vlen_at_its_maximum(params):
    bounded(lambda: every_question(blob(wide(0xFFFF, params))))


def repeated_strings(copies: int) -> bytes:
    """Raw BTF (the writer stores a string once) of ``copies`` ints each named by its own copy of "x"."""
    strings = b"\0" + b"x\0" * copies
    types = b"".join(struct.pack("=IIII", 1 + 2 * i, info_word(Kind.INT), 4, 32) for i in range(copies))
    header = struct.pack("=" + HEADER_FORMAT, MAGIC, VERSION, 0, HEADER_SIZE, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_a_string_table_of_copies():
    """A lookup searched each copy of a name over every record: 66 s for a 1.8 MB file."""
    btf = BTF.from_bytes(repeated_strings(100_000))
    bounded(lambda: btf.lookup("struct x"))
    with pytest.raises(BTFError, match="no struct named 'x'"):
        btf.lookup("struct x")
    assert btf.lookup("x") == 1


def test_limits_give_one_error():
    """The shapes past the limits are refused with a BTFError that says which limit."""
    cases = [
        (nested_anonymous(17, 2, 1), lambda btf: btf.struct("top").fields(), f"more than {MAX_MEMBERS} members"),
        (nested_anonymous(40, 1, 1), lambda btf: btf.struct("top").fields(), "nest more than 32 deep"),
        (prototype_chain(12, 2), lambda btf: btf.func("f"), "longer than 2048 characters"),
        (prototype_chain(40, 1), lambda btf: btf.func("f"), "nests more than 64 deep"),
    ]
    for types, question, message in cases:
        with pytest.raises(BTFError, match=message):
            question(BTF.from_bytes(blob(types)))


def test_what_is_within_the_limits_is_answered():
    btf = BTF.from_bytes(blob(nested_anonymous(14, 2, 2)))
    fields = btf.struct("top").fields()
    assert len(fields) == 2 * 2**14 and {f.path for f in fields} == {"x0", "x1"}
    assert btf.field("top", "x1").offset == 0 and not btf.has_field("top", "x2")
    deep = BTF.from_bytes(blob(prototype_chain(5, 2)))
    assert str(deep.func("f")).startswith("int f(int (*a0)(int (*a0)(int (*a0)(")


@fuzz(10)
@given(st.sampled_from(["anon", "protos", "wide"]), st.integers(1, 40))
def test_btf_command_on_hostile_files(tmp_path_factory, capsys, shape, size):
    types = {"anon": lambda: nested_anonymous(size, 2, 1), "protos": lambda: prototype_chain(size, 2),
             "wide": lambda: wide(size * 1600, False)}[shape]()
    path = tmp_path_factory.mktemp("hostile") / "x.btf"
    path.write_bytes(blob(types))
    for question in (["struct", "top"], ["struct", "holder"], ["struct", "w"], ["func", "f"], ["field", "top", "x0"]):
        start = time.process_time()
        code = main(["btf", *question, "--btf", str(path)])
        _, err = capsys.readouterr()
        assert time.process_time() - start < MAX_SECONDS
        assert code == 0 or (code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err), err
