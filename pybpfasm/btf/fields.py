"""Field paths through struct layouts: ``dev.name``, ``frags[0].len``, ``sk->__sk_common.skc_family``.

A path is member names joined by ``.`` (or ``->``, which means the same:
where a pointer is crossed is decided by the types), each optionally indexed
(``[N]``) into an array or through a pointer. The answer is a :class:`Field`:
the chain of :class:`Step` s to reach it (each step but the last loads a
pointer), its size, C type and bitfield position. Anonymous struct/union
members are searched through as C does.

:class:`StructLayout` (BTF) and :class:`pybpfasm.btf.tracefs.TracepointFormat`
(tracefs) answer the same questions (``field``, ``has_field``, ``fields``,
``size``, ``source``), so code that lays out a context can use either.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, NamedTuple, Sequence, Tuple

from .errors import BTFError
from .types import Array, Composite, Enum, Enum64, Int, Member, Ptr

if TYPE_CHECKING:
    from .reader import BTF

_SEGMENT = re.compile(r"\s*([A-Za-z_]\w*)\s*((?:\[\s*\d+\s*\]\s*)*)$")
_INDEX = re.compile(r"\d+")
_MAX_NESTING = 32


class UnknownField(BTFError):
    """A path names a member the struct does not have."""


class Step(NamedTuple):
    """Add ``offset`` to the current address; if ``deref``, load the pointer there."""

    offset: int
    deref: bool


@dataclass(frozen=True)
class Field:
    """Where a field lies and what it is.

    ``steps[:-1]`` are pointer loads (``deref``), ``steps[-1]`` the field
    itself; ``offset`` is the last step's byte offset. For a bitfield,
    ``offset``/``size`` are the naturally aligned unit to load, ``bit_offset``
    (from the start of the last struct) and ``bit_size`` locate the bits.
    ``type_id`` is None for a field from a tracefs format file.
    """

    path: str
    steps: Tuple[Step, ...]
    size: int
    type_name: str
    bit_offset: int
    bit_size: int = 0
    signed: bool = False
    type_id: int | None = None
    data_loc: bool = False

    @property
    def offset(self) -> int:
        return self.steps[-1].offset

    @property
    def needs_deref(self) -> bool:
        return len(self.steps) > 1


def parse_path(path: str) -> List[Tuple[str, List[int]]]:
    """``"a.b[1][2]->c"`` -> ``[("a", []), ("b", [1, 2]), ("c", [])]``."""
    segments = []
    for text in re.split(r"\.|->", path):
        match = _SEGMENT.match(text)
        if not match:
            raise BTFError(f"bad field path {path!r}: cannot parse {text.strip()!r}")
        segments.append((match.group(1), [int(i) for i in _INDEX.findall(match.group(2))]))
    return segments


def _check_nesting(btf: BTF, type_id: int, seen: frozenset) -> frozenset:
    if type_id in seen or len(seen) > _MAX_NESTING:
        raise BTFError(f"{btf.source}: struct id {type_id} contains itself")
    return seen | {type_id}


def _find_member(btf: BTF, type_id: int, name: str, seen: frozenset = frozenset()) -> List[Member] | None:
    """The member chain (through anonymous members) that reaches ``name``."""
    seen = _check_nesting(btf, type_id, seen)
    members = btf.type(type_id).members  # type: ignore[union-attr]
    for m in members:
        if m.name == name:
            return [m]
    for m in members:
        if m.name:
            continue
        inner = btf.complete(m.type_id)
        if isinstance(btf.type(inner), Composite):
            chain = _find_member(btf, inner, name, seen)
            if chain:
                return [m, *chain]
    return None


def member_names(btf: BTF, type_id: int, seen: frozenset = frozenset()) -> List[str]:
    """Names reachable directly, anonymous members flattened."""
    names: List[str] = []
    seen = _check_nesting(btf, type_id, seen)
    for m in btf.type(type_id).members:  # type: ignore[union-attr]
        if m.name:
            names.append(m.name)
        elif isinstance(btf.type(btf.complete(m.type_id)), Composite):
            names += member_names(btf, btf.complete(m.type_id), seen)
    return names


def _unknown(btf: BTF, type_id: int, name: str, path: str) -> UnknownField:
    names = member_names(btf, type_id)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return UnknownField(
        f"{btf.type_name(type_id)} has no field {name!r} (in path {path!r}); "
        f"{hint}its fields: {', '.join(names) or '(none)'}"
    )


def _bitfield(btf: BTF, member: Member) -> Tuple[int, int]:
    """(extra bit offset, bit size) of a member; size 0 when it is not a bitfield."""
    if member.bitfield_size:
        return 0, member.bitfield_size
    t = btf.type(btf.resolve(member.type_id))
    if isinstance(t, Int) and (t.offset or t.bits != t.size * 8):  # kind_flag=0 style
        return t.offset, t.bits
    return 0, 0


def _load_unit(bit_offset: int, bit_size: int, size: int) -> Tuple[int, int]:
    """Byte offset and size of the aligned load that holds a bitfield (as libbpf does)."""
    size = max(size, 1)
    while True:
        offset = bit_offset // 8 // size * size
        if bit_offset + bit_size - offset * 8 <= size * 8 or size >= 8:
            return offset, size
        size *= 2


def resolve_path(btf: BTF, type_id: int, path: str) -> Field:
    """Walk ``path`` from struct/union ``type_id``; see :class:`Field`."""
    steps: List[Step] = []
    bits = 0
    current = type_id
    bit_extra = bit_size = 0
    for name, indexes in parse_path(path):
        struct_id = btf.complete(current)
        if isinstance(btf.type(struct_id), Ptr):
            steps.append(Step(bits // 8, True))
            bits = 0
            struct_id = btf.complete(btf.type(struct_id).type_id)  # type: ignore[union-attr]
        if not isinstance(btf.type(struct_id), Composite):
            raise BTFError(f"in path {path!r}: {btf.type_name(current)} before {name!r} is not a struct or union")
        chain = _find_member(btf, struct_id, name)
        if chain is None:
            raise _unknown(btf, struct_id, name, path)
        bits += sum(m.bit_offset for m in chain)
        current = chain[-1].type_id
        bit_extra, bit_size = _bitfield(btf, chain[-1])
        for index in indexes:
            bit_extra = bit_size = 0
            container_id = btf.complete(current)
            container = btf.type(container_id)
            if isinstance(container, Array):
                if container.nelems and index >= container.nelems:
                    raise BTFError(f"in path {path!r}: index {index} is past the end of {btf.type_name(current)}")
            elif isinstance(container, Ptr):
                steps.append(Step(bits // 8, True))
                bits = 0
            else:
                raise BTFError(f"in path {path!r}: {name} ({btf.type_name(current)}) cannot be indexed")
            current = container.type_id
            bits += index * btf.sizeof(current) * 8
    resolved = btf.type(btf.resolve(current))
    size = btf.sizeof(current)
    signed = isinstance(resolved, (Int, Enum, Enum64)) and resolved.signed
    if bit_size:
        bits += bit_extra
        offset, size = _load_unit(bits, bit_size, size)
    elif bits % 8:
        raise BTFError(f"in path {path!r}: field at bit {bits} is not byte aligned")
    else:
        offset = bits // 8
    steps.append(Step(offset, False))
    return Field(path, tuple(steps), size, btf.type_name(current), bits, bit_size, signed, current)


class StructLayout:
    """A struct or union of a BTF, asked about its fields."""

    def __init__(self, btf: BTF, type_id: int) -> None:
        self.btf = btf
        self.type_id = type_id
        self.type = btf.type(type_id)
        self.name = btf.type_name(type_id)
        if not isinstance(self.type, Composite):
            raise BTFError(f"{self.name} is not a struct or union")
        self.size: int = self.type.size  # type: ignore[union-attr]
        self.source = btf.source

    def __repr__(self) -> str:
        return f"<StructLayout {self.name} ({self.size} bytes) from {self.source}>"

    def field(self, path: str) -> Field:
        return resolve_path(self.btf, self.type_id, path)

    def has_field(self, path: str) -> bool:
        try:
            self.field(path)
        except UnknownField:
            return False
        return True

    def fields(self) -> Sequence[Field]:
        """Every member (anonymous members flattened), in declaration order."""
        return [self.field(name) for name in member_names(self.btf, self.type_id)]
