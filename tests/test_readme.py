"""README's self-contained Python examples run as shown (a stale example is a bug)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
#: examples that are whole programs (the others are fragments about objects made elsewhere)
WHOLE = {"assembler": "from pybpfasm.asm import Program", "edsl": "def drop_udp_port"}


def _block(marker: str) -> str:
    (block,) = [b for b in BLOCKS if marker in b]
    return block


def test_the_assembler_example():
    proc = subprocess.run([sys.executable, "-c", _block(WHOLE["assembler"])], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "exit" in proc.stdout


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="loads and attaches programs: needs root")
def test_the_edsl_example():
    proc = subprocess.run([sys.executable, "-c", _block(WHOLE["edsl"])], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "1"  # XDP_DROP
    assert re.fullmatch(r"\[Exec\(ts=\d+, pid=\d+, comm='[^']+', port=53\)\]", lines[1]), lines[1]
    assert lines[2] == "1"
