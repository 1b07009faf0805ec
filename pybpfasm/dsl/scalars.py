"""The eDSL's scalar and array types: what records and map declarations are made of.

Kept apart from :mod:`.types` (kernel types from BTF) so that declaring
records and maps, and decoding what they hold, needs no BTF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Scalar:
    """An integer of *size* bytes."""

    size: int
    signed: bool = False
    big_endian: bool = False
    name: str = ""

    def __getitem__(self, count: int) -> ArrayType:
        return ArrayType(self, count)

    def __repr__(self) -> str:
        return self.name or f"{'s' if self.signed else 'u'}{8 * self.size}"

    @property
    def struct_format(self) -> str:
        """The :mod:`struct` format of one value (byte order included)."""
        code = {1: "b", 2: "h", 4: "i", 8: "q"}[self.size]
        return (">" if self.big_endian else "<") + (code if self.signed else code.upper())

    def decode(self, data: bytes) -> int:
        return struct.unpack(self.struct_format, data)[0]

    def encode(self, value: int) -> bytes:
        return struct.pack(self.struct_format, value)

    def to_wire(self, value: int) -> int:
        """The register image of a Python int compared with a value of this type."""
        if not self.big_endian:
            return value
        return int.from_bytes(value.to_bytes(self.size, "big", signed=self.signed), "little")


@dataclass(frozen=True)
class ArrayType:
    elem: Scalar
    count: int

    @property
    def size(self) -> int:
        return self.elem.size * self.count

    def __repr__(self) -> str:
        return f"{self.elem!r}[{self.count}]"


u8, u16, u32, u64 = Scalar(1, name="u8"), Scalar(2, name="u16"), Scalar(4, name="u32"), Scalar(8, name="u64")
s8, s16, s32, s64 = (Scalar(1, True, name="s8"), Scalar(2, True, name="s16"),
                     Scalar(4, True, name="s32"), Scalar(8, True, name="s64"))
be16, be32, be64 = (Scalar(2, big_endian=True, name="be16"), Scalar(4, big_endian=True, name="be32"),
                    Scalar(8, big_endian=True, name="be64"))
char = Scalar(1, name="char")
