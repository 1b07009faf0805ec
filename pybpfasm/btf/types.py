"""The BTF type model: one frozen dataclass per kind.

Types refer to other types by id (``type_id``), exactly as BTF does, so a
value means the same thing to the reader (which decodes it) and the writer
(which encodes it). Navigate with :class:`pybpfasm.btf.BTF` (``btf.type(id)``,
``btf.resolve(id)``). Names are ``""`` for anonymous types.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import ClassVar, Tuple

from .kinds import IntEncoding, Kind, Linkage


@dataclass(frozen=True)
class Void:
    """Type id 0."""

    kind: ClassVar[Kind] = Kind.UNKN
    name: ClassVar[str] = ""


@dataclass(frozen=True)
class Int:
    """An integer; ``bits``/``offset`` below ``size * 8``/0 mark an old-style bitfield."""

    kind: ClassVar[Kind] = Kind.INT
    name: str
    size: int
    bits: int
    offset: int = 0
    encoding: IntEncoding = IntEncoding.NONE

    @property
    def signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)


@dataclass(frozen=True)
class Float:
    kind: ClassVar[Kind] = Kind.FLOAT
    name: str
    size: int


@dataclass(frozen=True)
class Ptr:
    kind: ClassVar[Kind] = Kind.PTR
    type_id: int
    name: str = ""


@dataclass(frozen=True)
class Array:
    kind: ClassVar[Kind] = Kind.ARRAY
    type_id: int
    index_type_id: int
    nelems: int
    name: str = ""


@dataclass(frozen=True)
class Member:
    """A struct/union member; ``bitfield_size`` is 0 unless it is a bitfield."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass(frozen=True)
class Struct:
    kind: ClassVar[Kind] = Kind.STRUCT
    name: str
    size: int
    members: Tuple[Member, ...] = ()


@dataclass(frozen=True)
class Union:
    kind: ClassVar[Kind] = Kind.UNION
    name: str
    size: int
    members: Tuple[Member, ...] = ()


@dataclass(frozen=True)
class EnumValue:
    name: str
    value: int


@dataclass(frozen=True)
class Enum:
    """ENUM (32-bit values)."""

    kind: ClassVar[Kind] = Kind.ENUM
    name: str
    size: int
    values: Tuple[EnumValue, ...] = ()
    signed: bool = False


@dataclass(frozen=True)
class Enum64:
    """ENUM64 (64-bit values)."""

    kind: ClassVar[Kind] = Kind.ENUM64
    name: str
    size: int
    values: Tuple[EnumValue, ...] = ()
    signed: bool = False


@dataclass(frozen=True)
class Fwd:
    kind: ClassVar[Kind] = Kind.FWD
    name: str
    is_union: bool = False


@dataclass(frozen=True)
class Typedef:
    kind: ClassVar[Kind] = Kind.TYPEDEF
    name: str
    type_id: int


@dataclass(frozen=True)
class Volatile:
    kind: ClassVar[Kind] = Kind.VOLATILE
    type_id: int
    name: str = ""


@dataclass(frozen=True)
class Const:
    kind: ClassVar[Kind] = Kind.CONST
    type_id: int
    name: str = ""


@dataclass(frozen=True)
class Restrict:
    kind: ClassVar[Kind] = Kind.RESTRICT
    type_id: int
    name: str = ""


@dataclass(frozen=True)
class TypeTag:
    """``btf_type_tag``; ``attr`` is the kind_flag (an ``__attribute__`` tag)."""

    kind: ClassVar[Kind] = Kind.TYPE_TAG
    name: str
    type_id: int
    attr: bool = False


@dataclass(frozen=True)
class Func:
    """A function: its name, linkage and the id of its FUNC_PROTO."""

    kind: ClassVar[Kind] = Kind.FUNC
    name: str
    type_id: int
    linkage: Linkage = Linkage.STATIC


@dataclass(frozen=True)
class Param:
    """A FUNC_PROTO parameter; a last param with type_id 0 means ``...``."""

    name: str
    type_id: int


@dataclass(frozen=True)
class FuncProto:
    kind: ClassVar[Kind] = Kind.FUNC_PROTO
    return_type_id: int
    params: Tuple[Param, ...] = ()
    name: str = ""


@dataclass(frozen=True)
class Var:
    kind: ClassVar[Kind] = Kind.VAR
    name: str
    type_id: int
    linkage: Linkage = Linkage.STATIC


@dataclass(frozen=True)
class VarSecinfo:
    type_id: int
    offset: int
    size: int


@dataclass(frozen=True)
class Datasec:
    kind: ClassVar[Kind] = Kind.DATASEC
    name: str
    size: int
    vars: Tuple[VarSecinfo, ...] = ()


@dataclass(frozen=True)
class DeclTag:
    """``btf_decl_tag`` on a type, or on member/param ``component_idx`` (-1: the type)."""

    kind: ClassVar[Kind] = Kind.DECL_TAG
    name: str
    type_id: int
    component_idx: int = -1
    attr: bool = False


Type = typing.Union[
    Void, Int, Float, Ptr, Array, Struct, Union, Enum, Enum64, Fwd, Typedef, Volatile,
    Const, Restrict, TypeTag, Func, FuncProto, Var, Datasec, DeclTag,
]
Composite = (Struct, Union)
#: kinds that only qualify or rename another type: skipped by ``BTF.resolve``
Qualifiers = (Typedef, Volatile, Const, Restrict, TypeTag)

