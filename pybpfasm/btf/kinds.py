"""BTF wire constants from ``include/uapi/linux/btf.h``: the one table both the
reader and the writer use.

``RECORD_WORDS[kind] = (fixed, per_vlen)`` gives how many 32-bit words follow
the 12-byte ``struct btf_type`` header: ``fixed + per_vlen * vlen``.
"""

from __future__ import annotations

import enum

MAGIC = 0xEB9F
VERSION = 1
#: ``struct btf_header``: magic u16, version u8, flags u8, hdr_len, type_off,
#: type_len, str_off, str_len (all u32)
HEADER_FORMAT = "HBBIIIII"
HEADER_SIZE = 24


class Kind(enum.IntEnum):
    """``BTF_KIND_*``."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


#: words after the header: (fixed, per vlen entry)
RECORD_WORDS: dict[Kind, tuple[int, int]] = {
    Kind.INT: (1, 0),
    Kind.PTR: (0, 0),
    Kind.ARRAY: (3, 0),
    Kind.STRUCT: (0, 3),
    Kind.UNION: (0, 3),
    Kind.ENUM: (0, 2),
    Kind.FWD: (0, 0),
    Kind.TYPEDEF: (0, 0),
    Kind.VOLATILE: (0, 0),
    Kind.CONST: (0, 0),
    Kind.RESTRICT: (0, 0),
    Kind.FUNC: (0, 0),
    Kind.FUNC_PROTO: (0, 2),
    Kind.VAR: (1, 0),
    Kind.DATASEC: (0, 3),
    Kind.FLOAT: (0, 0),
    Kind.DECL_TAG: (1, 0),
    Kind.TYPE_TAG: (0, 0),
    Kind.ENUM64: (0, 3),
}


class IntEncoding(enum.IntFlag):
    """``BTF_INT_*`` encoding bits of an INT type."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


class Linkage(enum.IntEnum):
    """``BTF_FUNC_*`` / ``BTF_VAR_*`` linkage (the same numbers for both)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


def info_word(kind: Kind, vlen: int = 0, kind_flag: bool = False) -> int:
    """Pack ``btf_type.info``: vlen in bits 0-15, kind in 24-28, kind_flag in 31."""
    return (int(kind_flag) << 31) | (int(kind) << 24) | vlen


def unpack_info(info: int) -> tuple[int, int, bool]:
    """Split ``btf_type.info`` into (kind number, vlen, kind_flag)."""
    return (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
