"""Matrix reports from a real pytest JUnit file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pybpfasm.lab.vm.matrix import KernelRun, junit_outcomes, to_markdown, write_reports

SAMPLE = """
import pytest

def test_ok():
    pass

def test_bad():
    assert False

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass
"""


def junit_of_sample(tmp_path: Path) -> bytes:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    report = tmp_path / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", "test_sample.py"],
        cwd=tmp_path, capture_output=True,
    )  # fmt: skip
    return report.read_bytes()


def test_junit_outcomes_name_every_test(tmp_path: Path) -> None:
    assert junit_outcomes(junit_of_sample(tmp_path)) == {
        "test_sample::test_ok": "passed",
        "test_sample::test_bad": "failed",
        "test_sample::test_skipped": "skipped",
    }


def test_reports_have_a_row_per_test_and_a_column_per_kernel(tmp_path: Path) -> None:
    tests = junit_outcomes(junit_of_sample(tmp_path))
    runs = [
        KernelRun("6.1", "6.1.0-56-amd64", 1, 9.5, tests=tests),
        KernelRun("5.10", "5.10.0-46-amd64", error="timeout: guest killed"),
    ]
    argv = ["pytest", "tests/kernel"]
    table = to_markdown(runs, argv).splitlines()
    assert table[2] == "| test | 6.1 (6.1.0-56-amd64) | 5.10 (5.10.0-46-amd64) |"
    assert "| test_sample::test_bad | failed | error |" in table
    assert "| test_sample::test_skipped | skipped | error |" in table
    assert "| **command** | failed (exit 1, 9.5 s) | error |" in table
    assert "- 5.10: timeout: guest killed" in table

    md, js = write_reports(runs, argv, tmp_path / "out")
    doc = json.loads(js.read_text())
    assert [k["outcome"] for k in doc["kernels"]] == ["failed", "error"]
    assert doc["kernels"][0]["tests"] == tests
    assert md.read_text() == to_markdown(runs, argv)
