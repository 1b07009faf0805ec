"""BTF: the kernel's type information, read lazily, and program BTF, written.

Reading (the eDSL's view of kernel types)::

    from pybpfasm.btf import BTF
    btf = BTF.kernel()                      # /sys/kernel/btf/vmlinux, memoised; cheap to open
    btf.source                              # "kernel BTF /sys/kernel/btf/vmlinux"
    f = btf.field("sk_buff", "dev.name")    # Field: steps=(Step(16, deref=True), Step(280, False)),
                                            #   size=16, type_name="char[16]", bit_offset, bit_size
    btf.has_field("sk_buff", "tstamp")      # for differences between kernel versions
    btf.sizeof("struct iphdr")              # 20
    btf.enum("skb_drop_reason")             # {"SKB_NOT_DROPPED_YET": 0, "SKB_CONSUMED": 1, ...}
    btf.func("tcp_v4_rcv")                  # Signature: args with names, C types, sizes
    btf.struct("sk_buff").fields()          # every member as a Field
    btf.trace_event("kfree_skb")            # struct trace_event_raw_kfree_skb (tracepoint context)
    btf.lookup("struct sk_buff"); btf.type(type_id); btf.resolve(type_id); btf.type_name(type_id)

    BTF.module("nf_conntrack")              # split BTF on top of the kernel's
    BTF.from_file("vmlinux")                # raw BTF or an ELF's .BTF section (--btf FILE)

Without kernel BTF, tracepoint contexts come from tracefs and answer the same
``field``/``has_field``/``fields``/``size``/``source`` questions::

    from pybpfasm.btf import read_format
    read_format("skb", "kfree_skb").field("reason")   # source "tracefs format /sys/.../format"

Writing (program BTF for the loader): :class:`BTFBuilder`, see :mod:`.writer`.

Every problem (bad data, unknown names, bad paths) raises :class:`BTFError`;
an unknown member raises its subclass :class:`UnknownField`.
"""

from __future__ import annotations

from .errors import BTFError
from .fields import Field, Step, StructLayout, UnknownField
from .funcs import Argument, Signature
from .kinds import IntEncoding, Kind, Linkage
from .reader import BTF, KERNEL_BTF
from .tracefs import TracepointFormat, parse_format, read_format
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
    Void,
    Volatile,
)
from .writer import BTFBuilder, ProgramBTF

__all__ = [
    "BTF", "KERNEL_BTF", "Argument", "Array", "BTFBuilder", "BTFError", "Const", "Datasec",
    "DeclTag", "Enum", "Enum64", "EnumValue", "Field", "Float", "Func", "FuncProto", "Fwd",
    "Int", "IntEncoding", "Kind", "Linkage", "Member", "Param", "ProgramBTF", "Ptr", "Restrict",
    "Signature", "Step", "Struct", "StructLayout", "TracepointFormat", "Type", "TypeTag",
    "Typedef", "Union", "UnknownField", "Var", "VarSecinfo", "Void", "Volatile",
    "parse_format", "read_format",
]
