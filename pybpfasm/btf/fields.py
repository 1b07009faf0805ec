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
from .limits import MAX_MEMBERS, MAX_RESOLVE_DEPTH
from .types import Array, Composite, Enum, Enum64, Int, Member, Ptr

if TYPE_CHECKING:
    from .reader import BTF

_SEGMENT = re.compile(r"\s*([A-Za-z_]\w*)\s*((?:\[\s*[0-9]+\s*\]\s*)*)")  # ASCII digits only
_INDEX = re.compile(r"[0-9]+")
#: the largest index a path may hold: BTF array lengths are u32
_MAX_INDEX = 0xFFFFFFFF
#: member names an unknown-field message lists
_LISTED = 100


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
        match = _SEGMENT.fullmatch(text)
        if not match:
            raise BTFError(f"bad field path {path!r}: cannot parse {text.strip()!r}")
        indexes = _INDEX.findall(match.group(2))
        for index in indexes:
            if len(index) > 10 or int(index) > _MAX_INDEX:
                raise BTFError(f"bad field path {path!r}: index {index[:12]}{'...' if len(index) > 12 else ''} "
                               f"is past any BTF array (at most {_MAX_INDEX})")
        segments.append((match.group(1), [int(i) for i in indexes]))
    return segments


#: a member reached from a struct: its bit offset from the struct's start, and the member
Reached = Tuple[int, Member]


def _enter(btf: BTF, type_id: int, stack: Tuple[int, ...]) -> Tuple[int, ...]:
    """``stack`` + ``type_id``, the chain of anonymous members being searched through."""
    if type_id in stack:
        raise BTFError(f"{btf.source}: struct id {type_id} contains itself")
    if len(stack) >= MAX_RESOLVE_DEPTH:
        raise BTFError(f"{btf.source}: anonymous members of struct id {stack[0]} nest more than "
                       f"{MAX_RESOLVE_DEPTH} deep")
    return (*stack, type_id)


def _anonymous(btf: BTF, member: Member) -> int | None:
    """The struct/union id an anonymous member stands for, or None (a name, or padding)."""
    if member.name:
        return None
    inner = btf.complete(member.type_id)
    return inner if isinstance(btf.type(inner), Composite) else None


def _find_member(btf: BTF, type_id: int, name: str) -> Reached | None:
    """The member called ``name``, searched through anonymous members as C does.

    Each struct is searched once (one that did not have ``name`` by one path
    will not have it by another), so a graph of shared anonymous members
    costs its size.
    """
    searched: set[int] = set()

    def search(struct_id: int, stack: Tuple[int, ...]) -> Reached | None:
        stack = _enter(btf, struct_id, stack)
        members = btf.type(struct_id).members  # type: ignore[union-attr]
        for m in members:
            if m.name == name:
                return m.bit_offset, m
        for m in members:
            inner = _anonymous(btf, m)
            if inner is not None and inner not in searched:
                found = search(inner, stack)
                if found:
                    return m.bit_offset + found[0], found[1]
        searched.add(struct_id)
        return None

    return search(type_id, ())


def flat_members(btf: BTF, type_id: int) -> List[Reached]:
    """Every named member, anonymous members flattened, in declaration order.

    The members are counted first (each struct once, however many anonymous
    members share it): past :data:`MAX_MEMBERS` is a BTFError, before any list
    is built. So the work is the size of the graph plus the size of the answer.
    """
    counted: dict[int, int] = {}

    def count(struct_id: int, stack: Tuple[int, ...]) -> int:
        stack = _enter(btf, struct_id, stack)
        known = counted.get(struct_id)
        if known is None:
            known = 0
            for m in btf.type(struct_id).members:  # type: ignore[union-attr]
                inner = _anonymous(btf, m)
                known += bool(m.name) if inner is None else count(inner, stack)
            counted[struct_id] = known
        return known

    if count(type_id, ()) > MAX_MEMBERS:
        raise BTFError(f"{btf.source}: struct id {type_id} has more than {MAX_MEMBERS} members "
                       "once its anonymous members are flattened")
    walked: dict[int, List[Reached]] = {}

    def walk(struct_id: int) -> List[Reached]:
        known = walked.get(struct_id)
        if known is None:
            known = []
            for m in btf.type(struct_id).members:  # type: ignore[union-attr]
                inner = _anonymous(btf, m)
                if inner is not None:
                    inside = walk(inner)
                    known += [(m.bit_offset + bits, leaf) for bits, leaf in inside] if m.bit_offset else inside
                elif m.name:
                    known.append((m.bit_offset, m))
            walked[struct_id] = known
        return known

    return walk(type_id)


def member_names(btf: BTF, type_id: int) -> List[str]:
    """Names reachable directly, anonymous members flattened."""
    return [m.name for _, m in flat_members(btf, type_id)]


def _unknown(btf: BTF, type_id: int, name: str, path: str) -> UnknownField:
    def detail() -> str:
        names = list(dict.fromkeys(member_names(btf, type_id)))  # anonymous members may repeat names
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        shown = ", ".join(names[:_LISTED]) + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
        return f"; {hint}its fields: {shown or '(none)'}"

    return UnknownField(f"{btf.type_name(type_id)} has no field {name!r} (in path {path!r})", detail)


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
    member = None
    for name, indexes in parse_path(path):
        struct_id = btf.complete(current)
        if isinstance(btf.type(struct_id), Ptr):
            steps.append(Step(bits // 8, True))
            bits = 0
            struct_id = btf.complete(btf.type(struct_id).type_id)  # type: ignore[union-attr]
        if not isinstance(btf.type(struct_id), Composite):
            raise BTFError(f"in path {path!r}: {btf.type_name(current)} before {name!r} is not a struct or union")
        found = _find_member(btf, struct_id, name)
        if found is None:
            raise _unknown(btf, struct_id, name, path)
        bits += found[0]
        member = found[1]
        current = member.type_id
        for index in indexes:
            member = None
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
    return _field(path, steps, bits, current, _facts(btf, current), member)


class _TypeFacts(NamedTuple):
    """What a Field takes from its type: C name, size, signedness, old-style bitfield bits."""

    name: str
    size: int
    signed: bool
    int_bits: Tuple[int, int]


def _facts(btf: BTF, type_id: int) -> _TypeFacts:
    resolved = btf.type(btf.resolve(type_id))
    signed = isinstance(resolved, (Int, Enum, Enum64)) and resolved.signed
    int_bits = (0, 0)
    if isinstance(resolved, Int) and (resolved.offset or resolved.bits != resolved.size * 8):  # kind_flag=0 style
        int_bits = (resolved.offset, resolved.bits)
    return _TypeFacts(btf.type_name(type_id), btf.sizeof(type_id), signed, int_bits)


def _field(path: str, steps: List[Step], bits: int, type_id: int, facts: _TypeFacts, member: Member | None) -> Field:
    """The Field of ``type_id`` at ``bits`` after ``steps``; ``member`` (if it is one) may be a bitfield."""
    bit_extra, bit_size = 0, 0
    if member is not None:
        bit_extra, bit_size = (0, member.bitfield_size) if member.bitfield_size else facts.int_bits
    size = facts.size
    if bit_size:
        bits += bit_extra
        offset, size = _load_unit(bits, bit_size, size)
    elif bits % 8:
        raise BTFError(f"in path {path!r}: field at bit {bits} is not byte aligned")
    else:
        offset = bits // 8
    return Field(path, (*steps, Step(offset, False)), size, facts.name, bits, bit_size, facts.signed, type_id)


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
        facts: dict[int, _TypeFacts] = {}
        out = []
        for bits, m in flat_members(self.btf, self.type_id):
            known = facts.get(m.type_id)
            if known is None:
                known = facts[m.type_id] = _facts(self.btf, m.type_id)
            out.append(_field(m.name, [], bits, m.type_id, known, m))
        return out
