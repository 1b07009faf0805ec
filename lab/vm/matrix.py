"""One command on several kernels: a ``kernel x test`` table as Markdown and JSON.

When the command runs pytest, the guest's JUnit report gives one row per test;
any other command is one row named after the command.
"""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from . import kernels, qemu
from .errors import GuestTimeout, LabError

#: the kernels ``matrix`` runs on unless told otherwise
DEFAULT_KERNELS = ("5.10", "6.1", "6.12")


@dataclass
class KernelRun:
    """The outcome of the command on one kernel."""

    kernel: str  #: as asked for, e.g. "6.1"
    release: str | None = None
    exit_code: int | None = None
    seconds: float = 0.0
    error: str | None = None  #: boot failure, timeout, missing kernel
    tests: dict[str, str] = field(default_factory=dict)  #: test id -> passed/failed/error/skipped

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return "error"
        return "passed" if self.exit_code == 0 else "failed"


def junit_outcomes(xml: bytes) -> dict[str, str]:
    """Test id -> outcome from a pytest JUnit XML report."""
    outcomes = {}
    for case in ET.fromstring(xml).iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":")
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
        outcomes[name] = outcome
    return outcomes


def run_one(version: str, argv: Sequence[str], config: qemu.GuestConfig) -> KernelRun:
    record = KernelRun(version)
    try:
        kernel = kernels.debian(version)
        record.release = kernel.release
        result = qemu.run(kernel, argv, config)
    except GuestTimeout as err:
        record.error = f"timeout: {err}"
        return record
    except LabError as err:
        record.error = str(err)
        return record
    record.exit_code, record.seconds = result.exit_code, round(result.seconds, 1)
    if "junit.xml" in result.files:
        record.tests = junit_outcomes(result.files["junit.xml"])
    return record


def run_matrix(
    versions: Sequence[str],
    argv: Sequence[str],
    config: qemu.GuestConfig,
    progress: Callable[[KernelRun], None] | None = None,
) -> list[KernelRun]:
    """Run *argv* on every kernel in *versions*, at most :data:`qemu.MAX_GUESTS` at once."""
    with ThreadPoolExecutor(max_workers=qemu.MAX_GUESTS) as pool:
        futures = [pool.submit(run_one, v, argv, config) for v in versions]
        runs = []
        for future in futures:
            runs.append(future.result())
            if progress:
                progress(runs[-1])
    return runs


def to_json(runs: Sequence[KernelRun], argv: Sequence[str]) -> str:
    doc = {"command": list(argv), "kernels": [{**asdict(r), "outcome": r.outcome} for r in runs]}
    return json.dumps(doc, indent=1) + "\n"


def to_markdown(runs: Sequence[KernelRun], argv: Sequence[str]) -> str:
    """Rows are tests (or the command), columns are kernels."""
    header = [f"{r.kernel} ({r.release or '?'})" for r in runs]
    lines = [f"Command: `{shlex.join(argv)}`", "", "| test | " + " | ".join(header) + " |"]
    lines.append("|---" * (len(runs) + 1) + "|")
    names = sorted({name for r in runs for name in r.tests})
    for name in names:
        cells = [r.tests.get(name, "error" if r.error else "-") for r in runs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    summary = [
        f"{r.outcome} (exit {r.exit_code}, {r.seconds:g} s)" if r.error is None else "error"
        for r in runs
    ]
    lines.append("| **command** | " + " | ".join(summary) + " |")
    errors = [f"- {r.kernel}: {r.error}" for r in runs if r.error]
    return "\n".join(lines + (["", *errors] if errors else [])) + "\n"


def write_reports(runs: Sequence[KernelRun], argv: Sequence[str], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "matrix.md", out / "matrix.json"
    md.write_text(to_markdown(runs, argv))
    js.write_text(to_json(runs, argv))
    return md, js
