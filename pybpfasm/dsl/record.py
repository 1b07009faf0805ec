"""Records: one declaration lays out BPF stores and decodes bytes in user space.

::

    class Drop(Record):
        ts: u64
        pid: u32
        comm: char[16]
        saddr: be32

    ev.saddr = iph.saddr          # in a program: stores at Drop's offsets
    Drop.decode(raw).comm         # in user space: 'ping'

Fields are laid out as C lays out a struct (natural alignment, tail
padding); ``char[N]`` decodes to ``str``, ``u8[N]`` to ``bytes``, other
arrays to lists, big-endian fields to host integers.  The class is also a
map codec (``size``/``encode``/``decode``), so it can key or fill a map.
"""

from __future__ import annotations

import struct
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

from ..errors import UsageError
from .scalars import ArrayType, Scalar, char, u8, u32

FieldType = typing.Union[Scalar, ArrayType, "type[Record]"]

#: value -> name of each kernel enum a record field names, filled when programs are built
ENUM_NAMES: dict[str, dict[int, str]] = {}


@dataclass(frozen=True)
class KernelEnum(Scalar):
    """An integer field holding a value of the kernel's ``enum <enum>``; it decodes to
    the member's name (less *prefix*) as the running kernel's BTF spells it, or to
    the number where the kernel has no such member (or no BTF, and *fallback*,
    which returns ``{value: name}`` or None, knows nothing either)."""

    enum: str = ""
    prefix: str = ""
    fallback: Optional[Callable[[], Optional[dict[int, str]]]] = field(default=None, compare=False)

    def names(self) -> dict[int, str]:
        """The table decoding uses (empty until :func:`resolve_enums`)."""
        return ENUM_NAMES.setdefault(self.enum, {})


def kernel_enum(enum: str, base: Scalar = u32, prefix: str = "",
                fallback: Callable[[], dict[int, str] | None] | None = None) -> KernelEnum:
    """A record field type for ``enum <enum>`` values stored as *base* (u32 by default)."""
    return KernelEnum(base.size, base.signed, base.big_endian, name=enum, enum=enum,
                      prefix=prefix, fallback=fallback)


def enum_fields(record: type[Record]) -> list[KernelEnum]:
    """The kernel-enum fields of *record*, nested records included."""
    found: list[KernelEnum] = []
    for _, _, ty in record.FIELDS:
        if isinstance(ty, KernelEnum):
            found.append(ty)
        elif isinstance(ty, type) and issubclass(ty, Record):
            found += enum_fields(ty)
    return found


def resolve_enums(record: type[Record], btf: Any) -> dict[str, dict[int, str]]:
    """Fill the name tables of *record*'s enum fields from *btf* (or their fallback);
    returns them, for a program cache to restore with :func:`restore_enums`."""
    from ..btf import BTFError

    out: dict[str, dict[int, str]] = {}
    for ty in enum_fields(record):
        table = ty.names()
        if not table:
            try:
                members = btf.enum(ty.enum)
            except BTFError:
                members = None
            if members is not None:
                n = len(ty.prefix)
                table.update({v: k[n:] if k.startswith(ty.prefix) else k for k, v in members.items()})
            elif ty.fallback is not None:
                table.update(ty.fallback() or {})
        out[ty.enum] = dict(table)
    return out


def restore_enums(tables: dict[str, dict[int, str]]) -> None:
    """Put back name tables saved by :func:`resolve_enums`."""
    for enum, table in tables.items():
        ENUM_NAMES.setdefault(enum, {}).update(table)


def _align(ty: FieldType) -> int:
    if isinstance(ty, ArrayType):
        return ty.elem.size
    if isinstance(ty, Scalar):
        return ty.size
    return ty.ALIGN


def _format(ty: FieldType) -> str:
    """struct format of one field in little-endian order (big-endian ints are swapped after)."""
    if isinstance(ty, Scalar):
        return ty.struct_format[1]
    if isinstance(ty, ArrayType):
        if ty.elem in (char, u8):
            return f"{ty.count}s"
        return f"{ty.count}{ty.elem.struct_format[1]}"
    return f"{ty.size}s"


def _decoder(name: str, ty: FieldType):
    """A function turning the unpacked value(s) of a field into its Python value."""
    if isinstance(ty, Scalar) and ty.big_endian and ty.size == 2 and not ty.signed:
        return lambda v: ((v & 0xFF) << 8) | (v >> 8)
    if isinstance(ty, Scalar) and ty.big_endian:
        fmt_le, fmt_be = struct.Struct("<" + ty.struct_format[1]), struct.Struct(ty.struct_format)
        return lambda v: fmt_be.unpack(fmt_le.pack(v))[0]
    if isinstance(ty, KernelEnum):
        names = ty.names()
        return lambda v: names.get(v, v)
    if isinstance(ty, ArrayType) and ty.elem is char:
        return lambda v: v.split(b"\0", 1)[0].decode("utf-8", "replace")
    if isinstance(ty, type):
        return ty.decode
    return None


class Record:
    """Base class of record declarations (see the module docstring)."""

    #: a record may ask for more alignment than its fields need (e.g. 8, so that
    #: its byte arrays can be copied and compared a word at a time)
    ALIGNMENT: ClassVar[int] = 1
    #: (name, offset, type) of every field, in declaration order
    FIELDS: ClassVar[tuple[tuple[str, int, FieldType], ...]] = ()
    size: ClassVar[int] = 0
    ALIGN: ClassVar[int] = 1
    _struct: ClassVar[struct.Struct]
    _plan: ClassVar[tuple]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        module = sys.modules.get(cls.__module__)
        namespace = {**vars(sys.modules[__name__]), **(vars(module) if module else {})}
        fields, fmt, offset, align = [], "<", 0, 1
        for name, ann in cls.__dict__.get("__annotations__", {}).items():
            # string annotations (from __future__ import annotations) are evaluated here:
            # typing.get_type_hints refuses non-type objects like u32 before Python 3.11
            ty = eval(ann, namespace) if isinstance(ann, str) else ann
            if not isinstance(ty, (Scalar, ArrayType)) and not (isinstance(ty, type) and issubclass(ty, Record)):
                raise UsageError(f"{cls.__name__}.{name}: {ty!r} is not a field type "
                                 "(use u8..u64, s8..s64, be16/be32/be64, char[N] or a Record)")
            a = _align(ty)
            pad = -offset % a
            fmt += "x" * pad
            offset += pad
            fields.append((name, offset, ty))
            fmt += _format(ty)
            offset += ty.size
            align = max(align, a)
        align = max(align, cls.__dict__.get("ALIGNMENT", 1))
        tail = -offset % align
        cls.FIELDS = tuple(fields)
        cls.size = offset + tail
        cls.ALIGN = align
        cls._struct = struct.Struct(fmt + "x" * tail)
        cls._plan = tuple(_plan_field(name, ty) for name, _, ty in fields)
        cls.from_tuple = staticmethod(_tuple_decoder(cls))  # type: ignore[method-assign]

    @classmethod
    def field_layout(cls, name: str) -> tuple[int, FieldType]:
        for fname, offset, ty in cls.FIELDS:
            if fname == name:
                return offset, ty
        raise UsageError(f"record {cls.__name__} has no field {name!r} "
                         f"(fields: {', '.join(f[0] for f in cls.FIELDS)})")

    def __init__(self, **values: Any) -> None:
        for name, _, _ in self.FIELDS:
            setattr(self, name, values.pop(name, 0))
        if values:
            raise UsageError(f"{type(self).__name__} has no field {next(iter(values))!r}")

    @classmethod
    def decode(cls, data: bytes) -> Record:
        """The record in the first ``size`` bytes of *data*."""
        return cls.from_tuple(cls._struct.unpack_from(data))

    @classmethod
    def struct_format(cls) -> str:
        """The :mod:`struct` format of the record's bytes (what :meth:`from_tuple` takes)."""
        return cls._struct.format

    @classmethod
    def from_tuple(cls, raw: tuple) -> Record:
        """The record of the values :meth:`struct_format` unpacks (batch readers decode many
        records with one ``struct.iter_unpack`` and make each with this).  Each record
        class gets its own, generated from its fields (:func:`_tuple_decoder`)."""
        raise NotImplementedError

    @classmethod
    def encode(cls, value: Record | dict) -> bytes:
        """Bytes of a record (or of a dict of its fields), for map updates."""
        get = value.get if isinstance(value, dict) else lambda n, d=0: getattr(value, n, d)
        flat: list[Any] = []
        for name, count, _ in cls._plan:
            ty = next(t for n, _, t in cls.FIELDS if n == name)
            v = get(name, 0)
            if isinstance(ty, Scalar) and ty.big_endian:
                v = ty.to_wire(v)
            elif isinstance(ty, ArrayType) and ty.elem in (char, u8):
                v = v.encode() if isinstance(v, str) else bytes(v)
            elif isinstance(ty, type):
                v = ty.encode(v)
            if count == 1:
                flat.append(v)
            else:
                flat.extend(v)
        return cls._struct.pack(*flat)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name, _, _ in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"{type(self).__name__}({body})"


def _tuple_decoder(cls: type[Record]) -> Callable[[tuple], Record]:
    """``raw tuple -> record`` for *cls*, one expression per field (no loop over the plan):
    records are decoded once per event, so this is the reader's inner loop."""
    env: dict[str, Any] = {"new": object.__new__, "cls": cls}
    items, pos = [], 0
    for i, (name, count, convert) in enumerate(cls._plan):
        value = f"raw[{pos}]" if count == 1 else f"list(raw[{pos}:{pos + count}])"
        if convert is not None:
            env[f"c{i}"] = convert
            value = f"c{i}({value})"
        items.append(f"{name!r}: {value}")
        pos += count
    source = ("def from_tuple(raw):\n    obj = new(cls)\n"
              f"    obj.__dict__.update({{{', '.join(items)}}})\n    return obj\n")
    exec(source, env)  # names and converters are the declaration's own, never user input
    return env["from_tuple"]


def _plan_field(name: str, ty: FieldType) -> tuple[str, int, Any]:
    """(name, number of struct items, converter) for decoding one field."""
    count = ty.count if isinstance(ty, ArrayType) and ty.elem not in (char, u8) else 1
    return name, count, _decoder(name, ty)
