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


@pytest.mark.vm
def test_ovs_dropmon_counts_a_drop_flow_in_a_61_guest(kernel_61: kernels.Kernel) -> None:
    """One short OVS scenario (tests/kernel/test_ovs_smoke.py): its drops equal the flow's packets."""
    from pybpfasm.lab.vm import qemu
    from pybpfasm.lab.vm.matrix import junit_outcomes

    argv = ["python3", "-m", "pytest", "-q", "tests/kernel/test_ovs_smoke.py"]
    result = qemu.run(kernel_61, argv, qemu.GuestConfig(timeout=240))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert set(junit_outcomes(result.files["junit.xml"]).values()) == {"passed"}
