"""Our model values spelled the way ``bpftool -j btf dump ... format raw`` spells types,
so the two readings can be compared as plain dicts."""

from __future__ import annotations

from pybpfasm.btf import (
    Array,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Ptr,
    Struct,
    Type,
    TypeTag,
    Union,
    Var,
)

_INT_ENCODING = {
    IntEncoding.NONE: "(none)", IntEncoding.SIGNED: "SIGNED", IntEncoding.CHAR: "CHAR",
    IntEncoding.BOOL: "BOOL",
}
_VAR_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def as_bpftool(type_id: int, t: Type) -> dict:
    d: dict = {"id": type_id, "kind": t.kind.name, "name": t.name or "(anon)"}
    if isinstance(t, Int):
        d.update(size=t.size, bits_offset=t.offset, nr_bits=t.bits, encoding=_INT_ENCODING[t.encoding])
    elif isinstance(t, Array):
        d.update(type_id=t.type_id, index_type_id=t.index_type_id, nr_elems=t.nelems)
    elif isinstance(t, (Struct, Union)):
        members = []
        for m in t.members:
            md = {"name": m.name or "(anon)", "type_id": m.type_id, "bits_offset": m.bit_offset}
            if m.bitfield_size:
                md["bitfield_size"] = m.bitfield_size
            members.append(md)
        d.update(size=t.size, vlen=len(t.members), members=members)
    elif isinstance(t, (Enum, Enum64)):
        values = [{"name": v.name, "val": v.value} for v in t.values]
        d.update(encoding="SIGNED" if t.signed else "UNSIGNED", size=t.size, vlen=len(values), values=values)
    elif isinstance(t, Fwd):
        d.update(fwd_kind="union" if t.is_union else "struct")
    elif isinstance(t, Func):
        d.update(type_id=t.type_id, linkage=_VAR_LINKAGE[t.linkage])
    elif isinstance(t, FuncProto):
        params = [{"name": p.name or "(anon)", "type_id": p.type_id} for p in t.params]
        d.update(ret_type_id=t.return_type_id, vlen=len(params), params=params)
    elif isinstance(t, Var):
        d.update(type_id=t.type_id, linkage=_VAR_LINKAGE[t.linkage])
    elif isinstance(t, Datasec):
        vars_ = [{"type_id": v.type_id, "offset": v.offset, "size": v.size} for v in t.vars]
        d.update(size=t.size, vlen=len(vars_), vars=vars_)
    elif isinstance(t, Float):
        d.update(size=t.size)
    elif isinstance(t, DeclTag):
        d.update(type_id=t.type_id, component_idx=t.component_idx)
    elif isinstance(t, (Ptr, TypeTag)) or hasattr(t, "type_id"):
        d.update(type_id=t.type_id)  # type: ignore[union-attr]
    return d


def flat_members(types: dict[int, dict], type_id: int, base_bits: int = 0) -> dict[str, tuple[int, int]]:
    """name -> (bit offset, bitfield size) through anonymous members, from bpftool's dicts only."""
    out: dict[str, tuple[int, int]] = {}
    for m in types[type_id]["members"]:
        bits = base_bits + m["bits_offset"]
        if m["name"] != "(anon)":
            out.setdefault(m["name"], (bits, m.get("bitfield_size", 0)))
            continue
        inner = skip_modifiers(types, m["type_id"])
        if types[inner]["kind"] in ("STRUCT", "UNION"):
            for name, value in flat_members(types, inner, bits).items():
                out.setdefault(name, value)
    return out


def skip_modifiers(types: dict[int, dict], type_id: int) -> int:
    while types[type_id]["kind"] in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"):
        type_id = types[type_id]["type_id"]
    return type_id


def size_of(types: dict[int, dict], type_id: int) -> int:
    """Byte size of a type computed from bpftool's dicts."""
    t = types[skip_modifiers(types, type_id)]
    if t["kind"] == "PTR":
        return 8
    if t["kind"] == "ARRAY":
        return t["nr_elems"] * size_of(types, t["type_id"])
    return t["size"]


def normalized(d: dict) -> dict:
    """bpftool 7.1 prints a 32-bit ENUM value above 2**31 sign-extended to 64 bits even
    when the enum is unsigned; compare 32-bit enum values modulo 2**32."""
    if d["kind"] != "ENUM":
        return d
    values = [{**v, "val": v["val"] & 0xFFFFFFFF} for v in d["values"]]
    return {**d, "values": values}
