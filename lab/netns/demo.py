"""``pybpfasm lab demo``: build the drops topology, start the drop monitor, run every
scenario, print expected versus observed, tear everything down."""

from __future__ import annotations

import sys
import time
from typing import Sequence, TextIO

from . import build, runner
from .errors import LabError
from .monitor import DropMonitor, dropmon_available
from .scenario import Scenario, ScenarioSet
from .verdict import Verdict

_MAX_SHOWN = 3  # unexpected events listed per scenario


def demo(scenarios: ScenarioSet, out: TextIO = sys.stdout, monitor_args: Sequence[str] = ()) -> bool:
    """Run the demo; True when every scenario matched exactly."""
    if not dropmon_available():
        raise LabError("this installation has no 'pybpfasm dropmon' yet; "
                       "the scenarios are checked by the lab's own tests (pytest tests/lab)")
    started = time.monotonic()
    progress = Progress(out, len(scenarios.scenarios))
    with build.built(scenarios.topology), DropMonitor(scenarios.topology.name, monitor_args) as monitor:
        verdicts = runner.run(scenarios, monitor, progress)
        lost, bad = monitor.lost, list(monitor.bad_lines)
    progress.clear()
    out.write(table(verdicts))
    if lost:
        out.write(f"\nthe monitor reported {lost} lost events: counts may be short\n")
    if bad:
        out.write(f"\nthe monitor printed {len(bad)} lines that are not JSON objects, e.g. {bad[0]!r}\n")
    passed = sum(v.ok for v in verdicts)
    out.write(f"\n{passed}/{len(verdicts)} scenarios matched exactly in {time.monotonic() - started:.1f} s\n")
    return passed == len(verdicts) and not bad


class Progress:
    """One status line, rewritten in place on a terminal, one line per scenario otherwise."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out, self.total = out, total
        self.tty = out.isatty()

    def __call__(self, index: int, scenario: Scenario, verdict: Verdict | None) -> None:
        step = f"[{index + 1}/{self.total}] {scenario.name}"
        if verdict is None and self.tty:
            self.out.write(f"\r\033[K{step}: {scenario.summary}")
        elif verdict is not None and not self.tty:
            self.out.write(f"{step}: {'ok' if verdict.ok else 'MISMATCH'}\n")
        self.out.flush()

    def clear(self) -> None:
        if self.tty:
            self.out.write("\r\033[K")


def table(verdicts: Sequence[Verdict]) -> str:
    """Expected versus observed, one row per expectation, then what nobody expected."""
    rows = [("SCENARIO", "EXPECTED", "OBSERVED", "RESULT", "EVENT")]
    for v in verdicts:
        for i, (expectation, seen) in enumerate(v.expected):
            ok = "ok" if expectation.count == seen else "MISMATCH"
            rows.append((v.scenario if i == 0 else "", str(expectation.count), str(seen), ok,
                         expectation.describe()))
        if v.unexpected:
            rows.append(("", "0", str(len(v.unexpected)), "MISMATCH", "unexpected events (below)"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4] for row in rows]
    for v in verdicts:
        for event in v.unexpected[:_MAX_SHOWN]:
            shown = {k: event.get(k) for k in ("reason", "proto", "src", "dst", "sport", "dport",
                                                "ip_id", "vlan", "icmp_type", "ifname", "location")}
            lines.append(f"{v.scenario}: unexpected {shown}")
        if len(v.unexpected) > _MAX_SHOWN:
            lines.append(f"{v.scenario}: ... {len(v.unexpected) - _MAX_SHOWN} more")
    return "\n".join(lines) + "\n"
