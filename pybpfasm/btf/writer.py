"""BTF writer: program BTF for BPF_BTF_LOAD, plus the func_info and line_info
records BPF_PROG_LOAD takes.

Types are the model values of :mod:`pybpfasm.btf.types`, the same ones the
reader returns, so a written blob reads back equal::

    b = BTFBuilder()
    u32 = b.add(Int("unsigned int", 4, 32))
    key = b.add(Struct("key", 8, (Member("ifindex", u32, 0), Member("proto", u32, 32))))
    proto = b.add(FuncProto(u32, (Param("ctx", b.add(Ptr(0))),)))
    b.func_info(0, b.add(Func("prog", proto, Linkage.GLOBAL)))
    b.line_info(0, "tool.py", 12, col=4, source="ev.ts = b.ktime_get_ns()")
    out = b.build()     # out.btf, out.func_info, out.line_info

Map key/value BTF is just two of these ids (``btf_key_type_id``,
``btf_value_type_id`` of BPF_MAP_CREATE). With ``base=``, the blob is split
BTF on top of that BTF (ids and string offsets continue after the base's).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, List

from . import codec
from .errors import BTFError
from .kinds import HEADER_FORMAT, HEADER_SIZE, MAGIC, RECORD_WORDS, VERSION
from .types import Type

if TYPE_CHECKING:
    from .reader import BTF

#: ``sizeof(struct bpf_func_info)`` and ``sizeof(struct bpf_line_info)``
FUNC_INFO_SIZE = 8
LINE_INFO_SIZE = 16
#: ``bpf_line_info.line_col``: line number above bit 10, column below (BPF_LINE_INFO_LINE_NUM)
LINE_SHIFT = 10
MAX_COLUMN = (1 << LINE_SHIFT) - 1


@dataclass(frozen=True)
class ProgramBTF:
    """What a loader needs: the BTF blob and the record arrays (rec sizes 8 and 16)."""

    btf: bytes
    func_info: bytes
    line_info: bytes
    func_info_rec_size: int = FUNC_INFO_SIZE
    line_info_rec_size: int = LINE_INFO_SIZE


class BTFBuilder:
    """Collects types, strings and func/line info records, then packs them."""

    def __init__(self, byteorder: str = sys.byteorder, base: BTF | None = None) -> None:
        self._order = {"little": "<", "big": ">"}[byteorder]
        self._first_id = base.last_id + 1 if base else 1
        self._first_str = base.next_string_offset if base else 0
        self._strings: dict[str, int] = {}
        self._string_bytes = bytearray()
        if base is None:
            self.string("")
        self._words: List[int] = []
        self._count = 0
        self._func_info: List[tuple[int, int]] = []
        self._line_info: List[tuple[int, int, int, int]] = []

    def string(self, text: str) -> int:
        """Offset of ``text`` in the string table, adding it once."""
        offset = self._strings.get(text)
        if offset is None:
            raw = text.encode()
            if b"\0" in raw:
                raise BTFError(f"BTF string {text!r} contains a NUL byte")
            offset = self._strings[text] = self._first_str + len(self._string_bytes)
            self._string_bytes += raw + b"\0"
        return offset

    def add(self, t: Type) -> int:
        """Append a type; returns its id."""
        words = codec.encode(t, self.string)
        fixed, per_vlen = RECORD_WORDS[t.kind]
        if per_vlen and (len(words) - 3 - fixed) // per_vlen > 0xFFFF:
            raise BTFError(f"{type(t).__name__} {t.name!r} has more than 65535 entries")
        self._words += words
        self._count += 1
        return self._first_id + self._count - 1

    def func_info(self, insn_off: int, type_id: int) -> None:
        """Record that the function ``type_id`` (a FUNC) starts at instruction ``insn_off``."""
        self._func_info.append((insn_off, type_id))

    def line_info(self, insn_off: int, file: str, line: int, col: int = 0, source: str = "") -> None:
        """Record that instruction ``insn_off`` comes from ``file:line:col`` (text ``source``)."""
        if not 0 <= col <= MAX_COLUMN or not 0 <= line < 1 << (32 - LINE_SHIFT):
            raise BTFError(f"line info {file}:{line}:{col} out of range")
        self._line_info.append((insn_off, self.string(file), self.string(source), line << LINE_SHIFT | col))

    def build(self) -> ProgramBTF:
        order = self._order
        try:
            types = struct.pack(f"{order}{len(self._words)}I", *self._words)
            func_info = b"".join(struct.pack(order + "II", *r) for r in self._func_info)
            line_info = b"".join(struct.pack(order + "IIII", *r) for r in self._line_info)
        except struct.error as err:
            raise BTFError(f"a BTF value does not fit its field: {err}") from None
        strings = bytes(self._string_bytes)
        header = struct.pack(
            order + HEADER_FORMAT, MAGIC, VERSION, 0, HEADER_SIZE, 0, len(types), len(types), len(strings)
        )
        return ProgramBTF(header + types + strings, func_info, line_info)
