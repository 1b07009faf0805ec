"""Encode and decode one ``struct btf_type`` record and the words after it.

Both directions work on 32-bit words (BTF records are word-aligned); the
caller owns byte order and the string table.
"""

from __future__ import annotations

from typing import Callable, List, Sequence

from .errors import BTFError
from .kinds import IntEncoding, Kind, Linkage, info_word
from .types import (
    Array,
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
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Volatile,
)

_MODIFIERS = {Kind.PTR: Ptr, Kind.VOLATILE: Volatile, Kind.CONST: Const, Kind.RESTRICT: Restrict}


def _s32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def _linkage(value: int) -> Linkage:
    try:
        return Linkage(value)
    except ValueError:
        raise BTFError(f"unknown linkage {value}") from None


def decode(
    kind: Kind, vlen: int, kflag: bool, name: str, size_or_type: int,
    words: Sequence[int], pos: int, string: Callable[[int], str],
) -> Type:
    """Build the model value of one record; ``words[pos:]`` hold what follows its header."""
    sot = size_or_type
    if kind in _MODIFIERS:
        return _MODIFIERS[kind](sot, name)
    if kind is Kind.INT:
        word = words[pos]
        return Int(name, sot, word & 0xFF, (word >> 16) & 0xFF, IntEncoding((word >> 24) & 0x0F))
    if kind is Kind.ARRAY:
        return Array(words[pos], words[pos + 1], words[pos + 2], name)
    if kind in (Kind.STRUCT, Kind.UNION):
        members = []
        for i in range(pos, pos + 3 * vlen, 3):
            off = words[i + 2]
            bits, size = (off & 0xFFFFFF, off >> 24) if kflag else (off, 0)
            members.append(Member(string(words[i]), words[i + 1], bits, size))
        return (Struct if kind is Kind.STRUCT else Union)(name, sot, tuple(members))
    if kind is Kind.ENUM:
        conv = _s32 if kflag else int
        values = tuple(
            EnumValue(string(words[i]), conv(words[i + 1])) for i in range(pos, pos + 2 * vlen, 2)
        )
        return Enum(name, sot, values, kflag)
    if kind is Kind.ENUM64:
        values = []
        for i in range(pos, pos + 3 * vlen, 3):
            value = words[i + 2] << 32 | words[i + 1]
            if kflag and value >> 63:
                value -= 1 << 64
            values.append(EnumValue(string(words[i]), value))
        return Enum64(name, sot, tuple(values), kflag)
    if kind is Kind.FWD:
        return Fwd(name, kflag)
    if kind is Kind.TYPEDEF:
        return Typedef(name, sot)
    if kind is Kind.TYPE_TAG:
        return TypeTag(name, sot, kflag)
    if kind is Kind.FUNC:
        return Func(name, sot, _linkage(vlen))
    if kind is Kind.FUNC_PROTO:
        params = tuple(
            Param(string(words[i]), words[i + 1]) for i in range(pos, pos + 2 * vlen, 2)
        )
        return FuncProto(sot, params, name)
    if kind is Kind.VAR:
        return Var(name, sot, _linkage(words[pos]))
    if kind is Kind.DATASEC:
        secinfos = tuple(
            VarSecinfo(words[i], words[i + 1], words[i + 2]) for i in range(pos, pos + 3 * vlen, 3)
        )
        return Datasec(name, sot, secinfos)
    if kind is Kind.FLOAT:
        return Float(name, sot)
    if kind is Kind.DECL_TAG:
        return DeclTag(name, sot, _s32(words[pos]), kflag)
    raise BTFError(f"unknown BTF kind {int(kind)}")


def encode(t: Type, string_offset: Callable[[str], int]) -> List[int]:
    """The words of one record: header then what follows it."""
    kind = t.kind
    name = string_offset(t.name)
    if isinstance(t, (Ptr, Volatile, Const, Restrict, Typedef)):
        return [name, info_word(kind), t.type_id]
    if isinstance(t, Int):
        return [name, info_word(kind), t.size, (int(t.encoding) << 24) | (t.offset << 16) | t.bits]
    if isinstance(t, Array):
        return [name, info_word(kind), 0, t.type_id, t.index_type_id, t.nelems]
    if isinstance(t, (Struct, Union)):
        kflag = any(m.bitfield_size for m in t.members)
        out = [name, info_word(kind, len(t.members), kflag), t.size]
        for m in t.members:
            if kflag and (m.bit_offset >= 1 << 24 or m.bitfield_size >= 1 << 8):
                raise BTFError(f"member {m.name!r}: bitfield offset/size out of range")
            off = (m.bitfield_size << 24 | m.bit_offset) if kflag else m.bit_offset
            out += [string_offset(m.name), m.type_id, off]
        return out
    if isinstance(t, Enum):
        out = [name, info_word(kind, len(t.values), t.signed), t.size]
        for v in t.values:
            out += [string_offset(v.name), v.value & 0xFFFFFFFF]
        return out
    if isinstance(t, Enum64):
        out = [name, info_word(kind, len(t.values), t.signed), t.size]
        for v in t.values:
            value = v.value & 0xFFFFFFFFFFFFFFFF
            out += [string_offset(v.name), value & 0xFFFFFFFF, value >> 32]
        return out
    if isinstance(t, Fwd):
        return [name, info_word(kind, 0, t.is_union), 0]
    if isinstance(t, TypeTag):
        return [name, info_word(kind, 0, t.attr), t.type_id]
    if isinstance(t, Func):
        return [name, info_word(kind, int(t.linkage)), t.type_id]
    if isinstance(t, FuncProto):
        out = [name, info_word(kind, len(t.params)), t.return_type_id]
        for p in t.params:
            out += [string_offset(p.name), p.type_id]
        return out
    if isinstance(t, Var):
        return [name, info_word(kind), t.type_id, int(t.linkage)]
    if isinstance(t, Datasec):
        out = [name, info_word(kind, len(t.vars)), t.size]
        for v in t.vars:
            out += [v.type_id, v.offset, v.size]
        return out
    if isinstance(t, Float):
        return [name, info_word(kind), t.size]
    if isinstance(t, DeclTag):
        return [name, info_word(kind, 0, t.attr), t.type_id, t.component_idx & 0xFFFFFFFF]
    raise BTFError(f"cannot encode {t!r}")

