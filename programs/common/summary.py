"""Counts printed the way bpftrace prints its maps, once at exit or every ``-i S``.

bpftrace tools such as the book's sofamily print their maps when they end; a
:class:`Summary` tool does the same by default (one tick, at Ctrl-C, SIGTERM or
the end of ``--duration``) and prints every interval when ``-i`` is given.
:func:`map_lines` is bpftrace's ``print(@name)``: ``@name[k1, k2]: N`` lines,
fewest first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .output import escape
from .table import interval_header
from .tool import Tool


def map_lines(name: str, counts: Iterable[tuple[tuple[Any, ...], int]]) -> list[str]:
    """``@name[key...]: count`` for each (key, count), fewest first (then by key);
    control characters in keys are escaped (a process name cannot forge a line)."""
    ordered = sorted(counts, key=lambda kc: (kc[1], [str(k) for k in kc[0]]))
    return [f"@{name}[{', '.join(escape(str(k)) for k in key)}]: {n}" for key, n in ordered]


class Totals:
    """What running totals gained since the last look: maps of totals are read, never
    reset, so no count is lost between a read and a reset."""

    def __init__(self) -> None:
        self.seen: dict[Any, int] = {}

    def gained(self, now: dict[Any, int]) -> dict[Any, int]:
        """The keys of *now* (key -> total) that grew, with how much."""
        seen, self.seen = self.seen, now
        return {key: n - seen.get(key, 0) for key, n in now.items() if n != seen.get(key, 0)}


class Summary(Tool):
    """A tool that prints once, at exit, unless ``-i`` asks for every interval."""

    at_exit = True

    def summary(self, coll: Any, opts: Any) -> dict[str, Any]:
        """The counts since the last summary (one tick's JSON object)."""
        raise NotImplementedError

    def summary_text(self, summary: dict[str, Any]) -> list[str]:
        """The text lines of one summary (without the interval's time line)."""
        raise NotImplementedError

    def tick(self, coll: Any, opts: Any) -> list[dict[str, Any]]:
        return [self.summary(coll, opts)]

    def tick_text(self, rows: list[dict[str, Any]]) -> list[str]:
        lines = [] if self.args.interval is None else [interval_header()]
        for row in rows:
            lines += self.summary_text(row)
        return lines
