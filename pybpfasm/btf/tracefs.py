"""Tracepoint context layouts from tracefs ``format`` files, for kernels without BTF.

``read_format("skb", "kfree_skb")`` parses
``/sys/kernel/tracing/events/skb/kfree_skb/format`` into a
:class:`TracepointFormat`, which answers ``field``/``has_field``/``fields``
like :class:`pybpfasm.btf.fields.StructLayout` (fields carry no BTF type id).
``__data_loc`` fields are u32 words: the string's offset in the low 16 bits,
its length in the high 16; their Field has ``data_loc=True``.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Sequence, Tuple

from .errors import BTFError
from .fields import Field, Step, UnknownField, parse_path

_FIELD_LINE = re.compile(
    r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);\s*(?:signed:(?P<signed>\d+);)?"
)
_DECLARATION = re.compile(r"^(?P<type>.*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*(?P<dims>(?:\[[^\]]*\]\s*)*)$")
_HEADER = re.compile(r"^(name|ID):\s*(.*)$", re.M)


class UnknownFormatField(UnknownField):
    """A field name the format file does not have; the suggestions are made when shown."""

    def __init__(self, fmt: TracepointFormat, name: str) -> None:
        super().__init__(name)
        self.format, self.name = fmt, name

    def __str__(self) -> str:
        import difflib  # only when the error is shown: not at start-up

        names = list(self.format._fields)
        close = difflib.get_close_matches(self.name, names, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        return (f"tracepoint {self.format.name} has no field {self.name!r}; "
                f"{hint}its fields: {', '.join(names)}")


class TracepointFormat:
    """The fields of one tracepoint's context, from its tracefs format file."""

    def __init__(self, name: str, event_id: int | None, fields: Sequence[Field], source: str) -> None:
        self.name = name
        self.id = event_id
        self.source = source
        self._fields: Dict[str, Field] = {f.path: f for f in fields}
        self.size = max((f.offset + f.size for f in fields), default=0)

    def __repr__(self) -> str:
        return f"<TracepointFormat {self.name} ({len(self._fields)} fields) from {self.source}>"

    def fields(self) -> Sequence[Field]:
        return list(self._fields.values())

    def field(self, path: str) -> Field:
        """A field by name; ``name[i]`` indexes a fixed-size array field."""
        segments = parse_path(path)
        (name, indexes), rest = segments[0], segments[1:]
        field = self._fields.get(name)
        if field is None:
            raise UnknownFormatField(self, name)
        if rest:
            raise BTFError(f"{path!r}: a tracefs format has no types to follow past {name!r} (use BTF)")
        return _indexed(field, indexes, path) if indexes else field

    def has_field(self, path: str) -> bool:
        """Whether the first name of *path* is a field (a bad index past it raises, as in :meth:`field`)."""
        if parse_path(path)[0][0] not in self._fields:
            return False
        self.field(path)
        return True


def _indexed(field: Field, indexes: Sequence[int], path: str) -> Field:
    dims = [int(d) for d in re.findall(r"\[(\d+)\]", field.type_name)]
    if len(indexes) > len(dims) or field.data_loc:
        raise BTFError(f"{path!r}: {field.path} ({field.type_name}) cannot be indexed that way")
    offset, size = field.offset, field.size
    for index, dim in zip(indexes, dims):
        if index >= dim:
            raise BTFError(f"{path!r}: index {index} is past the end of {field.type_name}")
        size //= dim
        offset += index * size
    element = re.sub(r"\s*\[\d+\]", "", field.type_name, count=len(indexes))
    return Field(path, (Step(offset, False),), size, element, offset * 8, 0, field.signed)


def _parse_field(line: str, source: str) -> Field | None:
    match = _FIELD_LINE.match(line)
    if not match:
        return None
    decl = _DECLARATION.match(match.group("decl").strip())
    if not decl:
        raise BTFError(f"{source}: cannot parse field declaration {match.group('decl')!r}")
    type_name = (decl.group("type") + decl.group("dims").replace(" ", "")).strip()
    offset, size = int(match.group("offset")), int(match.group("size"))
    data_loc = type_name.startswith(("__data_loc", "__rel_loc"))
    return Field(
        decl.group("name"), (Step(offset, False),), size, type_name, offset * 8,
        0, match.group("signed") == "1", None, data_loc,
    )


def parse_format(text: str, source: str = "tracefs format") -> TracepointFormat:
    """Parse the text of a tracefs ``format`` file."""
    header = dict(_HEADER.findall(text))
    fields = [f for f in (_parse_field(line, source) for line in text.splitlines()) if f]
    if not fields:
        raise BTFError(f"{source}: no 'field:' lines (not a tracepoint format file?)")
    try:
        event_id: int | None = int(header["ID"]) if "ID" in header else None
    except ValueError:
        raise BTFError(f"{source}: bad ID line {header['ID']!r}") from None
    return TracepointFormat(header.get("name", "?"), event_id, fields, source)


def _tracefs_root() -> str:
    """tracefs, as the kernel layer finds it (mounted but closed to this user says so)."""
    from ..kernel import KernelError, tracefs_root

    try:
        return tracefs_root()
    except KernelError as err:
        raise BTFError(str(err)) from None


def read_format(category: str, event: str, root: str | None = None) -> TracepointFormat:
    """The context layout of tracepoint ``category:event`` from tracefs."""
    path = os.path.join(root or _tracefs_root(), "events", category, event, "format")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise BTFError(f"no tracepoint {category}:{event} ({path} does not exist)") from None
    except OSError as err:
        raise BTFError(f"cannot read {path}: {err.strerror}") from None
    return parse_format(text, f"tracefs format {path}")


def split_data_loc(word: int) -> Tuple[int, int]:
    """(offset, length) of a ``__data_loc`` word read from a tracepoint record."""
    return word & 0xFFFF, word >> 16
