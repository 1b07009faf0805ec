"""Lazy BTF reader: kernel, module (split) and external BTF.

Opening makes one pass over the raw bytes and keeps two ``array('I')``: the
word offset where each type record starts, and each record's name offset
(gathered in C with ``map``, packed for byte searches). A type becomes
a model value (:mod:`pybpfasm.btf.types`) only when asked for, and is
memoised. A lookup by name finds the name in the string table, then its
offset among the records' name offsets (two byte searches), and is memoised.
The full name -> ids dict (:meth:`BTF.names`) is built only when asked for
(listing, suggestions for a misspelt name).
"""

from __future__ import annotations

import difflib
import functools
import os
import struct
import sys
from array import array
from typing import Iterable, Iterator, Sequence

from . import codec, elf
from .cdecl import Spelling
from .errors import BTFError
from .fields import Field, StructLayout
from .funcs import Signature, signature
from .limits import MAX_RESOLVE_DEPTH
from .kinds import HEADER_FORMAT, HEADER_SIZE, MAGIC, RECORD_WORDS, Kind, unpack_info
from .types import (
    Array,
    Composite,
    Datasec,
    Enum,
    Enum64,
    Float,
    Fwd,
    Int,
    Ptr,
    Qualifiers,
    Type,
    Var,
    Void,
)

KERNEL_BTF = "/sys/kernel/btf/vmlinux"
VOID = Void()
#: C keyword in front of a name -> the kinds it means
_KEYWORDS: dict[str, tuple[Kind, ...]] = {
    "struct": (Kind.STRUCT,),
    "union": (Kind.UNION,),
    "enum": (Kind.ENUM, Kind.ENUM64),
}
#: kinds that name something with a size, for an unqualified name
_SIZED = (Kind.STRUCT, Kind.UNION, Kind.TYPEDEF, Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.FLOAT)


def _word_view(data: bytes, start: int, length: int, order: str) -> Sequence[int]:
    """The type section as indexable u32 words in the host's byte order."""
    native = "<" if sys.byteorder == "little" else ">"
    if order == native:
        return memoryview(data)[start : start + length].cast("I")
    words = array("I", data[start : start + length])
    words.byteswap()
    return words


class _RecordWords(dict):
    """``info`` word -> words in the record (header included), computed once per info."""

    def __missing__(self, info: int) -> int:
        kind, vlen, _ = unpack_info(info)
        if kind not in RECORD_WORDS:
            raise BTFError(f"unknown BTF kind {kind}")
        fixed, per_vlen = RECORD_WORDS[kind]  # type: ignore[index]
        self[info] = step = 3 + fixed + per_vlen * vlen
        return step


def _index_records(words: Sequence[int]) -> array:
    """Word offset of every type record; BTFError if a record is unknown or cut short.

    The loop is the hot path of opening vmlinux BTF (~130k records): it ends
    on the IndexError of reading past the last record.  Offsets go straight
    into an array: a list of 130k ints would cost 4 MiB more at peak.
    """
    offsets = array("I")
    add = offsets.append
    record_words = _RecordWords()
    i = 0
    try:
        while True:
            add(i)
            i += record_words[words[i + 1]]
    except IndexError:
        pass
    except BTFError as err:
        raise BTFError(f"type #{len(offsets)}: {err}") from None
    if i != len(words):
        raise BTFError(f"type #{len(offsets)}: record runs past the end of the type section")
    offsets.pop()
    return offsets


def _gather(words: Sequence[int], positions: array) -> array:
    """``words[p]`` for every p, as an array (map does the loop in C, without a big tuple)."""
    return array("I", map(words.__getitem__, positions))


class BTF:
    """One BTF blob: the running kernel's, a module's (split on the kernel's) or a file's.

    ``source`` says where it came from, e.g. ``"kernel BTF /sys/kernel/btf/vmlinux"``.
    Type ids run from 0 (void) to :attr:`last_id`; ids below :attr:`first_id`
    belong to :attr:`base`.
    """

    def __init__(self, data: bytes, source: str, base: BTF | None = None) -> None:
        self.source = source
        self.base = base
        self._data = data
        if len(data) < HEADER_SIZE:
            raise BTFError(f"{source}: {len(data)} bytes is too short for a BTF header")
        order = next((o for o in "<>" if struct.unpack_from(o + "H", data)[0] == MAGIC), None)
        if order is None:
            raise BTFError(f"{source}: not BTF (bad magic {data[:2].hex()})")
        self.byteorder = "little" if order == "<" else "big"
        self._order = order
        _, _, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            order + HEADER_FORMAT, data
        )
        type_start, self._str_start = hdr_len + type_off, hdr_len + str_off
        self._str_end = self._str_start + str_len
        if hdr_len < HEADER_SIZE or type_start % 4 or type_len % 4:
            raise BTFError(f"{source}: bad BTF header (hdr_len {hdr_len}, type_off {type_off})")
        if type_start + type_len > len(data) or self._str_end > len(data):
            needed = max(type_start + type_len, self._str_end)
            raise BTFError(f"{source}: truncated: header says {needed} bytes, there are {len(data)}")
        if str_len and data[self._str_end - 1] != 0:
            raise BTFError(f"{source}: string table is not NUL-terminated")
        if base is None and (not str_len or data[self._str_start] != 0):
            raise BTFError(f"{source}: string table must start with an empty string")
        self._type_start, self._type_end = type_start, type_start + type_len
        self._words = _word_view(data, type_start, type_len, order)
        self._offsets = _index_records(self._words)
        #: name_off of every record, host order, packed for byte searches by name
        self._name_words = _gather(self._words, self._offsets).tobytes()
        self.first_id = base.last_id + 1 if base else 1
        self._first_str = base.next_string_offset if base else 0
        self.last_id = self.first_id + len(self._offsets) - 1
        self._types: dict[int, Type] = {}
        self._names: dict[str, list[int]] | None = None
        self._ids_by_name: dict[tuple[str, frozenset[Kind] | None], list[int]] = {}
        self._spelling = Spelling(self)

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def kernel(cls, path: str = KERNEL_BTF) -> BTF:
        """The running kernel's BTF (memoised)."""
        return _open_kernel(path)

    @classmethod
    def release_kernel(cls) -> None:
        """Forget the memoised kernel BTF (about 9 MiB): for a tool whose programs are built."""
        _open_kernel.cache_clear()

    @classmethod
    def module(cls, name: str) -> BTF:
        """A kernel module's BTF, split on top of the kernel's."""
        if not name or "/" in name or name.startswith("."):
            raise BTFError(f"{name!r} is not a module name")
        path = os.path.join(os.path.dirname(KERNEL_BTF), name)
        return cls(_read(path, "module BTF"), f"module BTF {path}", base=cls.kernel())

    @classmethod
    def from_file(cls, path: str, base: BTF | None = None) -> BTF:
        """Raw BTF, or the ``.BTF`` section of an ELF file (a vmlinux, a BPF object)."""
        data = _read(path, "BTF file")
        if elf.is_elf(data):
            data = bytes(elf.section(data, ".BTF", path))
        return cls(data, f"external BTF {path}", base=base)

    @classmethod
    def from_bytes(cls, data: bytes, base: BTF | None = None, source: str = "BTF bytes") -> BTF:
        """Raw BTF held in memory (a blob from :class:`~pybpfasm.btf.BTFBuilder`)."""
        return cls(bytes(data), source, base=base)

    @property
    def next_string_offset(self) -> int:
        """Where the strings of a split BTF on top of this one start."""
        return self._first_str + self._str_end - self._str_start

    def __repr__(self) -> str:
        return f"<BTF {self.source}: ids {self.first_id}..{self.last_id}>"

    # --- ids and strings ---------------------------------------------------------------

    def string(self, offset: int) -> str:
        """The string at ``offset`` in the (base + own) string table."""
        if offset < self._first_str and self.base:
            return self.base.string(offset)
        start = self._str_start + offset - self._first_str
        end = self._data.find(b"\0", start, self._str_end)
        if start >= self._str_end or end < 0:
            raise BTFError(f"{self.source}: string offset {offset} is outside the string table")
        return self._data[start:end].decode("utf-8", "replace")

    def _record(self, type_id: int) -> int:
        index = type_id - self.first_id
        if not 0 <= index < len(self._offsets):
            raise BTFError(f"{self.source}: type id {type_id} does not exist (last is {self.last_id})")
        return self._offsets[index]

    def kind(self, type_id: int) -> Kind:
        """The kind of a type, without decoding it."""
        if type_id == 0:
            return Kind.UNKN
        if type_id < self.first_id and self.base:
            return self.base.kind(type_id)
        return Kind(unpack_info(self._words[self._record(type_id) + 1])[0])

    def type(self, type_id: int) -> Type:
        """The model value of a type id (memoised)."""
        if type_id == 0:
            return VOID
        if type_id < self.first_id and self.base:
            return self.base.type(type_id)
        cached = self._types.get(type_id)
        if cached is None:
            pos, words = self._record(type_id), self._words
            kind, vlen, kflag = unpack_info(words[pos + 1])
            name = self.string(words[pos])
            cached = codec.decode(Kind(kind), vlen, kflag, name, words[pos + 2], words, pos + 3, self.string)
            self._types[type_id] = cached
        return cached

    def types(self) -> Iterator[tuple[int, Type]]:
        """Every (id, type) of this blob (not of its base), decoding as it goes."""
        for type_id in range(self.first_id, self.last_id + 1):
            yield type_id, self.type(type_id)

    def _string_offsets(self, name: str) -> Iterator[int]:
        """Where ``name`` is stored in this blob's string table, first copy first."""
        needle = name.encode() + b"\0"
        data, start, end = self._data, self._str_start, self._str_end
        if data[start : start + len(needle)] == needle and start + len(needle) <= end:
            yield self._first_str
        pos = data.find(b"\0" + needle, start, end)
        while pos >= 0:
            yield pos + 1 - start + self._first_str
            pos = data.find(b"\0" + needle, pos + 1, end)

    def _ids_using_string(self, offset: int) -> Iterator[int]:
        names, pattern = self._name_words, struct.pack("=I", offset)
        pos = names.find(pattern)
        while pos >= 0:
            if pos % 4 == 0:
                yield self.first_id + pos // 4
            pos = names.find(pattern, pos + 1)

    def _own_ids(self, name: str, kinds: frozenset[Kind] | None) -> list[int]:
        """This blob's ids of types called ``name`` (of ``kinds``), memoised.

        Every BTF producer (pahole, LLVM, GCC, libbpf, this writer) stores a
        string once, so the search stops at the first copy of ``name`` in the
        string table when it names a wanted type. Later copies matter only to a
        blob that repeats strings: they are found in the full index (built once),
        not by a search per copy, which a blob of many copies makes quadratic.
        """
        key = (name, kinds)
        found = self._ids_by_name.get(key)
        if found is None:
            found = []
            for copy, offset in enumerate(self._string_offsets(name)):
                if copy:
                    everywhere = self.names().get(name, [])
                    found = [i for i in everywhere if i >= self.first_id and (kinds is None or self.kind(i) in kinds)]
                    break
                found = [i for i in self._ids_using_string(offset) if kinds is None or self.kind(i) in kinds]
                if found:
                    break
            self._ids_by_name[key] = found
        return found

    def ids(self, name: str, kinds: Iterable[Kind] | None = None) -> list[int]:
        """Ids of the types called ``name`` (of ``kinds`` if given), base first."""
        if not name:
            return []
        wanted = None if kinds is None else frozenset(kinds)
        found = self.base.ids(name, wanted) if self.base else []
        return found + self._own_ids(name, wanted)

    def names(self) -> dict[str, list[int]]:
        """The full name -> ids index, base included (built on first call; ~0.2 s for vmlinux)."""
        if self._names is None:
            index = dict(self.base.names()) if self.base else {}
            by_offset: dict[int, list[int]] = {}
            for type_id, name_off in enumerate(array("I", self._name_words), start=self.first_id):
                if name_off:
                    by_offset.setdefault(name_off, []).append(type_id)
            own: dict[str, list[int]] = {}
            for name_off, ids in by_offset.items():  # several offsets per name only where strings repeat
                own.setdefault(self.string(name_off), []).extend(ids)
            for name, ids in own.items():
                index[name] = index.get(name, []) + ids
            self._names = index
        return self._names

    def lookup(self, name: str, kinds: Iterable[Kind] | None = None) -> int:
        """The id of ``name``: ``"struct sk_buff"``, ``"enum xdp_action"``, ``"u32"``.

        A plain name means a struct, union, typedef, int, enum or float, in
        that order; forward declarations are never the answer.
        """
        words = name.split()
        if len(words) == 2 and words[0] in _KEYWORDS:
            kinds, name = _KEYWORDS[words[0]], words[1]
        candidates = list(kinds) if kinds is not None else list(_SIZED)
        ids = self.ids(name, candidates)
        if ids:
            return min(ids, key=lambda i: candidates.index(self.kind(i)))
        what = "/".join(k.name.lower() for k in candidates)
        raise BTFError(f"no {what} named {name!r} in {self.source}", lambda: self._suggest(name, candidates))

    def _suggest(self, name: str, kinds: Sequence[Kind]) -> str:
        """`` (did you mean: ...?)`` for a name not found, or ``""``."""
        pool = [n for n, ids in self.names().items() if any(self.kind(i) in kinds for i in ids)]
        close = difflib.get_close_matches(name, pool, n=5, cutoff=0.7)
        return f" (did you mean: {', '.join(close)}?)" if close else ""

    # --- type arithmetic ---------------------------------------------------------------

    def resolve(self, type_id: int) -> int:
        """Follow typedef/const/volatile/restrict/type_tag links to the underlying type id."""
        for _ in range(MAX_RESOLVE_DEPTH):
            t = self.type(type_id)
            if not isinstance(t, Qualifiers):
                return type_id
            type_id = t.type_id
        raise BTFError(f"{self.source}: type chain at id {type_id} loops")

    def complete(self, type_id: int) -> int:
        """Resolve, and replace a forward declaration by the full definition of that name."""
        type_id = self.resolve(type_id)
        t = self.type(type_id)
        if isinstance(t, Fwd):
            kind = Kind.UNION if t.is_union else Kind.STRUCT
            ids = self.ids(t.name, [kind])
            if ids:
                return ids[0]
        return type_id

    def sizeof(self, type_: int | str) -> int:
        """Size in bytes of a type id or a type name (``"struct sk_buff"``, ``"u64"``)."""
        type_id = self.lookup(type_) if isinstance(type_, str) else type_
        count = 1
        for _ in range(MAX_RESOLVE_DEPTH):
            type_id = self.complete(type_id)
            t = self.type(type_id)
            if isinstance(t, Array):
                count *= t.nelems
                type_id = t.type_id
            elif isinstance(t, Ptr):
                return count * self.pointer_size
            elif isinstance(t, (Int, Float, Enum, Enum64, Datasec, *Composite)):
                return count * t.size
            elif isinstance(t, Var):
                type_id = t.type_id
            else:
                raise BTFError(f"{self.type_name(type_id)} has no size")
        raise BTFError(f"{self.source}: array chain at id {type_id} loops")

    @functools.cached_property
    def pointer_size(self) -> int:
        """8, unless ``long`` here is 4 bytes (BTF of a 32-bit target)."""
        for type_id in self.ids("long int", [Kind.INT]):
            return self.type(type_id).size  # type: ignore[union-attr]
        return 8

    def type_name(self, type_id: int, declarator: str = "") -> str:
        """C spelling of a type: ``"struct net_device *"``, ``"char name[16]"``."""
        return self._spelling.declaration(type_id, declarator)

    # --- the questions a BPF program asks ----------------------------------------------

    def struct(self, name: str) -> StructLayout:
        """Layout view of a struct or union: ``"sk_buff"``, ``"struct sk_buff"``, ``"skb_frag_t"``."""
        type_id = self.lookup(name, None if " " in name else (Kind.STRUCT, Kind.UNION, Kind.TYPEDEF))
        return StructLayout(self, self.complete(type_id))

    def field(self, struct: str, path: str) -> Field:
        """Where ``path`` (``"dev.name"``, ``"frags[0].len"``) lies in ``struct``; see :class:`Field`."""
        return self.struct(struct).field(path)

    def has_field(self, struct: str, path: str) -> bool:
        return self.struct(struct).has_field(path)

    def enum(self, name: str) -> dict[str, int]:
        """``{enumerator: value}`` of an enum (``"skb_drop_reason"``, ``"bpf_func_id"``)."""
        kinds = (Kind.ENUM, Kind.ENUM64)
        t = self.type(self.resolve(self.lookup(name, None if " " in name else (*kinds, Kind.TYPEDEF))))
        if not isinstance(t, (Enum, Enum64)):
            raise BTFError(f"{name!r} is not an enum")
        return {v.name: v.value for v in t.values}

    def func(self, name: str) -> Signature:
        """Signature of a kernel function: parameter names and types, return type."""
        return signature(self, self.lookup(name, [Kind.FUNC]))

    def trace_event(self, name: str) -> StructLayout:
        """Layout of ``struct trace_event_raw_<name>``, a tracepoint class's context."""
        return self.struct(f"trace_event_raw_{name}")


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise BTFError(f"cannot read {what} {path}: {err.strerror}") from None


@functools.cache
def _open_kernel(path: str) -> BTF:
    if not os.path.exists(path):
        raise BTFError(
            f"no kernel BTF at {path} (kernel built without CONFIG_DEBUG_INFO_BTF?): "
            "pass --btf FILE with an external BTF or a vmlinux that has a .BTF section"
        )
    return BTF(_read(path, "kernel BTF"), f"kernel BTF {path}")

