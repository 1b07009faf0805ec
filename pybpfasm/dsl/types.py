"""Types of eDSL values: scalars, arrays, kernel (BTF) types and pointers.

Scalars are declared by width, sign and byte order (``u32``, ``s16``,
``be16``); ``char[16]`` is an array.  Kernel types come from BTF and are
wrapped in :class:`KernelType`, which answers the questions code
generation asks: size, members, pointee, and the scalar a load yields
(``__be16`` fields are big-endian scalars, enums are integers).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from ..btf import BTF, BTFError, Enum, Enum64, Int, Ptr, Struct
from ..btf import Array as BTFArray
from ..btf import Union as BTFUnion
from ..btf.fields import UnknownField, member_names, resolve_path
from .errors import BuildError, DSLTypeError, UnknownName, did_you_mean, listing
from .scalars import (  # noqa: F401 - the scalar types are part of this module's interface
    ArrayType,
    Scalar,
    be16,
    be32,
    be64,
    char,
    s8,
    s16,
    s32,
    s64,
    u8,
    u16,
    u32,
    u64,
)

if TYPE_CHECKING:  # pragma: no cover
    from .record import Record


class Space(enum.Enum):
    """Where a pointer points, which decides how the program may read it."""

    KERNEL = "kernel"    # any kernel address: bpf_probe_read_kernel
    USER = "user"        # user memory: bpf_probe_read_user
    BTF = "btf"          # BTF-typed kernel pointer (tp_btf, fentry): direct loads
    CTX = "ctx"          # the program context: direct loads at constant offsets
    PACKET = "packet"    # packet data: direct loads after bounds checks
    MAP = "map"          # map values and ring buffer records: direct loads and stores
    STACK = "stack"      # the program's own stack: direct loads and stores

    @property
    def direct(self) -> bool:
        return self not in (Space.KERNEL, Space.USER)


@dataclass(frozen=True)
class KernelType:
    """A BTF type of a kernel (or of a tracepoint format)."""

    btf: BTF
    type_id: int

    @classmethod
    def named(cls, btf: BTF, name: str) -> KernelType:
        """``"struct sk_buff"``, ``"sk_buff"`` (struct or union assumed) or a typedef name."""
        try:
            return cls(btf, btf.lookup(name))
        except BTFError as err:
            raise BuildError(str(err)) from None

    @property
    def resolved(self):
        return self.btf.type(self.btf.resolve(self.type_id))

    @property
    def size(self) -> int:
        return self.btf.sizeof(self.type_id)

    @property
    def name(self) -> str:
        return self.btf.type_name(self.type_id)

    def __repr__(self) -> str:
        return self.name

    @property
    def is_pointer(self) -> bool:
        return isinstance(self.resolved, Ptr)

    @property
    def is_composite(self) -> bool:
        return isinstance(self.resolved, (Struct, BTFUnion))

    @property
    def is_array(self) -> bool:
        return isinstance(self.resolved, BTFArray)

    def pointee(self) -> KernelType:
        return KernelType(self.btf, self.resolved.type_id)

    def element(self) -> KernelType:
        return KernelType(self.btf, self.resolved.type_id)

    def member(self, name: str):
        """The :class:`~pybpfasm.btf.Field` of member *name* (anonymous members see-through)."""
        try:
            return resolve_path(self.btf, self.btf.resolve(self.type_id), name)
        except UnknownField as err:
            if not name.isidentifier():  # a path: the BTF layer names the segment that is missing
                raise UnknownName(str(err)) from None
            raise UnknownName(lambda: f"{self.name} has no field {name!r}"
                              f"{did_you_mean(name, self.field_names())}"
                              f"{listing('fields', self.field_names())}") from None
        except BTFError as err:
            raise BuildError(str(err)) from None

    def field_names(self) -> list[str]:
        """Member names (anonymous members flattened); none for non-composites."""
        tid = self.btf.complete(self.type_id)
        return member_names(self.btf, tid) if isinstance(self.btf.type(tid), (Struct, BTFUnion)) else []

    def scalar(self) -> Scalar:
        """The scalar a load of this type yields; raises for structs and arrays."""
        t = self.resolved
        if isinstance(t, Ptr):
            return u64
        if isinstance(t, Int):
            return Scalar(t.size, t.signed, _is_big_endian(self.btf, self.type_id), self.name)
        if isinstance(t, (Enum, Enum64)):
            return Scalar(t.size, getattr(t, "signed", False), name=self.name)
        raise DSLTypeError(f"{self.name} is not a scalar; take a field or cast it")


def _is_big_endian(btf: BTF, type_id: int) -> bool:
    """``__be16``/``__be32``/``__be64`` typedefs (network byte order)."""
    seen = 0
    while seen < 16:
        name = btf.type_name(type_id)
        if name in ("__be16", "__be32", "__be64"):
            return True
        t = btf.type(type_id)
        nxt = getattr(t, "type_id", None)
        if nxt is None or nxt == type_id or isinstance(t, Ptr):
            return False
        type_id, seen = nxt, seen + 1
    return False


@dataclass(frozen=True)
class PtrType:
    """A pointer value: to a kernel type, a scalar, an array or a record, in a space."""

    target: Union[KernelType, Scalar, ArrayType, type[Record], None]
    space: Space
    #: may be NULL: the program must test it before dereferencing
    nullable: bool = False

    @property
    def size(self) -> int:
        return 8

    def __repr__(self) -> str:
        null = "?" if self.nullable else ""
        return f"{self.target!r}*{null}@{self.space.value}"


ValueType = Union[Scalar, PtrType]
AnyType = Union[Scalar, ArrayType, KernelType, PtrType, "type[Record]"]


def sizeof(ty: AnyType) -> int:
    """Bytes a value of *ty* occupies (records expose ``size`` on the class)."""
    return ty.size
