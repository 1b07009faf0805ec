"""Property: any list of model values the writer accepts reads back equal, in both byte orders."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfasm.btf import (
    BTF,
    Array,
    BTFBuilder,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Linkage,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Volatile,
)

u32 = st.integers(0, 2**32 - 1)
ids = st.integers(0, 40)
names = st.text("abcxyz_", max_size=6)
idents = st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True)
linkage = st.sampled_from(list(Linkage))


def members():
    """Plain members anywhere in 32 bits, or a mix with bitfields (then offsets fit 24 bits)."""
    plain = st.builds(Member, names, ids, u32)
    small = st.builds(Member, names, ids, st.integers(0, 2**24 - 1))
    bitfield = st.builds(Member, names, ids, st.integers(0, 2**24 - 1), st.integers(1, 255))
    return st.one_of(st.lists(plain, max_size=4), st.lists(st.one_of(small, bitfield), max_size=4)).map(tuple)


def enum_values(signed: bool, bits: int):
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return st.lists(st.builds(EnumValue, idents, st.integers(low, high)), max_size=4).map(tuple)


types = st.one_of(
    st.builds(Int, names, u32, st.integers(0, 255), st.integers(0, 255), st.integers(0, 15).map(IntEncoding)),
    st.builds(Float, names, u32),
    st.builds(Ptr, ids), st.builds(Const, ids), st.builds(Volatile, ids), st.builds(Restrict, ids),
    st.builds(Typedef, idents, ids), st.builds(TypeTag, idents, ids, st.booleans()),
    st.builds(Array, ids, ids, u32),
    st.builds(Struct, names, u32, members()), st.builds(Union, names, u32, members()),
    st.booleans().flatmap(lambda s: st.builds(Enum, names, u32, enum_values(s, 32), st.just(s))),
    st.booleans().flatmap(lambda s: st.builds(Enum64, names, u32, enum_values(s, 64), st.just(s))),
    st.builds(Fwd, idents, st.booleans()),
    st.builds(Func, idents, ids, linkage),
    st.builds(FuncProto, ids, st.lists(st.builds(Param, names, ids), max_size=4).map(tuple)),
    st.builds(Var, idents, ids, linkage),
    st.builds(Datasec, idents, u32, st.lists(st.builds(VarSecinfo, ids, u32, u32), max_size=3).map(tuple)),
    st.builds(DeclTag, idents, ids, st.integers(-1, 2**31 - 1), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(types, min_size=1, max_size=12), st.sampled_from(["little", "big"]))
def test_written_types_read_back_equal(written, byteorder):
    builder = BTFBuilder(byteorder=byteorder)
    assert [builder.add(t) for t in written] == list(range(1, len(written) + 1))
    btf = BTF.from_bytes(builder.build().btf)
    assert [t for _, t in btf.types()] == written
