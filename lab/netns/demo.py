"""``pybpfasm lab demo``: every tool case (:mod:`.cases`) in turn, each scenario's expected
versus observed events printed per tool, everything torn down after each case."""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping, Sequence, TextIO

from .cases import Case
from .errors import LabError
from .scenario import shorten
from .verdict import Verdict

_MAX_SHOWN = 3  # unexpected events listed per scenario


def demo(chosen: Sequence[tuple[Case, list[str]]], out: TextIO = sys.stdout) -> bool:
    """Run the chosen cases' scenarios; True when every one matched exactly."""
    if not chosen:
        raise LabError("this installation has none of the lab's tools yet; "
                       "the scenarios are checked by the lab's own tests (pytest tests/lab)")
    started = time.monotonic()
    total = sum(len(names) or len(case.scenarios()) for case, names in chosen)
    progress = Progress(out, total)
    results: list[tuple[str, list[Verdict]]] = []
    for case, names in chosen:
        progress.tool = case.tool
        results.append((case.tool, case.run(names, progress)))
    progress.clear()
    out.write(table(results))
    verdicts = [v for _, vs in results for v in vs]
    passed = sum(v.ok for v in verdicts)
    out.write(f"\n{passed}/{len(verdicts)} scenarios matched exactly in {time.monotonic() - started:.1f} s\n")
    return passed == len(verdicts)


class Progress:
    """One status line, rewritten in place on a terminal, one line per scenario otherwise."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out, self.total = out, total
        self.tty = out.isatty()
        self.done = 0
        self.tool = ""

    def __call__(self, scenario: Any, verdict: Verdict | None) -> None:
        step = f"[{self.done + 1}/{self.total}] {self.tool} {scenario.name}"
        if verdict is None and self.tty:
            self.out.write(f"\r\033[K{step}: {scenario.summary}")
        elif verdict is not None and not self.tty:
            self.out.write(f"{step}: {'ok' if verdict.ok else 'MISMATCH'}\n")
        if verdict is not None:
            self.done += 1
        self.out.flush()

    def clear(self) -> None:
        if self.tty:
            self.out.write("\r\033[K")


def table(results: Sequence[tuple[str, Sequence[Verdict]]]) -> str:
    """Expected versus observed, one row per expectation, per tool and scenario; then what
    nobody expected and what made an observation unsound."""
    rows = [("TOOL", "SCENARIO", "EXPECTED", "OBSERVED", "RESULT", "EVENT")]
    notes = []
    for tool, verdicts in results:
        for n, v in enumerate(verdicts):
            for i, (expectation, seen) in enumerate(v.expected):
                ok = "ok" if expectation.count == seen else "MISMATCH"
                rows.append((tool if n == 0 and i == 0 else "", v.scenario if i == 0 else "",
                             str(expectation.count), str(seen), ok, expectation.describe()))
            if v.unexpected:
                rows.append(("", "", "0", str(len(v.unexpected)), "MISMATCH", "unexpected events (below)"))
            notes += [f"{tool} {v.scenario}: unexpected {_shown(e)}" for e in v.unexpected[:_MAX_SHOWN]]
            if len(v.unexpected) > _MAX_SHOWN:
                notes.append(f"{tool} {v.scenario}: ... {len(v.unexpected) - _MAX_SHOWN} more")
            notes += [f"{tool} {v.scenario}: {problem}" for problem in v.problems]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[5] for row in rows]
    return "\n".join([*lines, *notes]) + "\n"


def _shown(event: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {shorten(v)}" for k, v in event.items() if v is not None) + "}"
