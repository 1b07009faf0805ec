"""The CI smoke test: boot Debian's 6.1 kernel once through the CLI."""

from __future__ import annotations

import pytest

from pybpfasm.lab.vm import kernels
from pybpfasm.cli import main


@pytest.mark.vm
def test_run_prints_the_guest_kernel_release(
    kernel_61: kernels.Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    code = "import pybpfasm, platform; print(platform.release())"
    status = main(
        ["lab", "vm", "run", "--kernel", "6.1", "--timeout", "120", "--", "python3", "-c", code]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out == f"{kernel_61.release}\n"
    assert kernel_61.release.startswith("6.1.")
