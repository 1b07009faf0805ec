"""bcc-style text columns: a header line, then one line per row, fields separated by a space.

A column is (key, title, width, align, fmt). ``width`` is a minimum: it grows to fit the title,
and a longer value widens its own line rather than being cut. ``None`` prints as ``-`` (the
formatter is not called for it). The last column, when left-aligned, is not padded, so lines
carry no trailing blanks. The line format is compiled once, for ``str.format``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable, NamedTuple, Optional, Union

Formatter = Union[Callable[[Any], str], str]

NONE = "-"


class Column(NamedTuple):
    """One column. ``title`` defaults to the key in capitals; ``align`` is ``<``, ``>`` or ``^``;
    ``fmt`` is a function of the value or a ``format()`` spec such as ``".2f"`` (default ``str``)."""

    key: str
    title: Optional[str] = None
    width: int = 0
    align: str = "<"
    fmt: Optional[Formatter] = None


ColumnSpec = Union[Column, tuple]


class Columns:
    """An ordered set of columns that renders a header and row lines."""

    def __init__(self, columns: Iterable[ColumnSpec], sep: str = " ") -> None:
        self.columns: tuple[Column, ...] = tuple(_column(spec) for spec in columns)
        if not self.columns:
            raise ValueError("Columns needs at least one column")
        self.sep = sep
        self.keys: tuple[str, ...] = tuple(c.key for c in self.columns)
        self._convs = tuple((c.key, _converter(c.fmt)) for c in self.columns)
        self._format = _compile(self.columns, sep).format
        self._header = self._format(*(c.title for c in self.columns))

    def header(self) -> str:
        """The header line (no newline)."""
        return self._header

    def cells(self, row: Mapping[str, Any]) -> list[str]:
        """Each column's text for ``row``, unpadded; a missing key is a ``KeyError``."""
        return [NONE if (value := row[key]) is None else conv(value) for key, conv in self._convs]

    def line(self, row: Mapping[str, Any]) -> str:
        """The line for ``row`` (no newline)."""
        return self._format(*self.cells(row))

    def fit(self, rows: Iterable[Mapping[str, Any]]) -> Columns:
        """These columns with each width grown to the widest of its cells in ``rows``."""
        widths = [c.width for c in self.columns]
        for row in rows:
            for i, cell in enumerate(self.cells(row)):
                if len(cell) > widths[i]:
                    widths[i] = len(cell)
        return Columns((c._replace(width=w) for c, w in zip(self.columns, widths)), self.sep)


def _column(spec: ColumnSpec) -> Column:
    column = spec if isinstance(spec, Column) else Column(*spec)
    if not isinstance(column.key, str):
        raise TypeError(f"column keys are strings, not {column.key!r}")
    if column.align not in ("<", ">", "^"):
        raise ValueError(f"column {column.key!r}: align is '<', '>' or '^', not {column.align!r}")
    if column.width < 0:
        raise ValueError(f"column {column.key!r}: width {column.width} is negative")
    title = column.key.upper() if column.title is None else column.title
    return column._replace(title=title, width=max(column.width, len(title)))


def _converter(fmt: Formatter | None) -> Callable[[Any], str]:
    if fmt is None:
        return str
    if isinstance(fmt, str):
        return lambda value: format(value, fmt)
    return fmt


def _compile(columns: tuple[Column, ...], sep: str) -> str:
    fields = [f"{{:{c.align}{c.width}}}" for c in columns]
    if columns[-1].align == "<":
        fields[-1] = "{}"
    return sep.replace("{", "{{").replace("}", "}}").join(fields)
