"""Periodic sorted tables with top-N, as bcc's *top tools print them each interval.

A ``Table`` is a spec; each interval a tool hands it that interval's rows (dicts). Rows sort
stably by one or more keys (``None`` below every value), descending by default, and keep
the first ``top``. Text aligns the shown rows under the header, and when rows were cut it
ends with ``... and K more rows``; JSON rows hold the column keys with raw values.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .columns import Columns, ColumnSpec

Row = Mapping[str, Any]


class Table:
    """Rows sorted by ``sort_by`` (a key or keys), ``top`` of them shown (all if ``None``)."""

    def __init__(self, columns: Columns | Iterable[ColumnSpec], sort_by: str | Sequence[str],
                 reverse: bool = True, top: int | None = None) -> None:
        self.columns = columns if isinstance(columns, Columns) else Columns(columns)
        self.sort_by: tuple[str, ...] = (sort_by,) if isinstance(sort_by, str) else tuple(sort_by)
        if not self.sort_by:
            raise ValueError("Table needs at least one sort key")
        if top is not None and top < 0:
            raise ValueError(f"top must be >= 0, not {top}")
        self.reverse = reverse
        self.top = top

    def select(self, rows: Iterable[Row]) -> tuple[list[Row], int]:
        """The rows to show, in order, and how many were cut by ``top``."""
        keys = self.sort_by
        ordered = sorted(rows, key=lambda row: [(row[k] is not None, row[k]) for k in keys],
                         reverse=self.reverse)
        if self.top is None or len(ordered) <= self.top:
            return ordered, 0
        return ordered[:self.top], len(ordered) - self.top

    def text(self, rows: Iterable[Row]) -> str:
        """Header and shown rows, widths fitted to them, each line ending in a newline."""
        shown, cut = self.select(rows)
        columns = self.columns.fit(shown)
        lines = [columns.header(), *map(columns.line, shown)]
        if cut:
            lines.append(f"... and {cut} more row{'s' if cut > 1 else ''}")
        return "".join(line + "\n" for line in lines)

    def json_rows(self, rows: Iterable[Row]) -> list[dict[str, Any]]:
        """The shown rows as dicts of the column keys, in column order, values as given."""
        keys = self.columns.keys
        return [{k: row[k] for k in keys} for row in self.select(rows)[0]]


def interval_header(note: str = "", when: float | None = None) -> str:
    """bcc's per-interval header: local ``HH:MM:SS`` (``when``, default now), then ``note``."""
    stamp = time.strftime("%H:%M:%S", time.localtime(when))
    return f"{stamp} {note}" if note else stamp

