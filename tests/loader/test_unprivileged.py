"""Without privileges, pybpfasm says so in one sentence and exits 1: no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           "--inh-caps=-all", "--bounding-set=-all"]


def test_unprivileged_features_is_one_sentence() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to drop privileges in a child")
    command = [*SETPRIV, sys.executable, "-c", "import sys; from pybpfasm.cli import main; sys.exit(main())",
               "features"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    child = subprocess.run(command, capture_output=True, text=True, env=env,
                           cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert child.returncode == 1, child.stderr
    assert child.stdout == ""
    lines = child.stderr.splitlines()
    assert len(lines) == 1, child.stderr
    assert lines[0].startswith("pybpfasm features: ")
    assert "Operation not permitted: run as root or with CAP_BPF" in lines[0]
    assert "Traceback" not in child.stderr
