"""The OVS tools' guest tests (tests/kernel/test_ovs_tools.py) on Debian 5.10, 6.1 and 6.12.

6.12 names drops by ``enum ovs_drop_reason``; 6.1 and 5.10 by location; 5.10
has no module BTF, so its clone summary says it cannot run and is skipped
there (the guest test reports the skip).
"""

from __future__ import annotations

import pytest

from pybpfasm.lab.vm import kernels, qemu
from pybpfasm.lab.vm.matrix import junit_outcomes

from .conftest import full_lab

pytestmark = [pytest.mark.vm, full_lab]


@pytest.mark.parametrize("series", ["6.1", "6.12", "5.10"])
def test_ovs_tools_match_ovs_counters(series: str, lab_host: None) -> None:
    argv = ["python3", "-m", "pytest", "-q", "tests/kernel/test_ovs_tools.py"]
    result = qemu.run(kernels.debian(series), argv, qemu.GuestConfig(timeout=900))
    outcomes = junit_outcomes(result.files["junit.xml"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert outcomes and "failed" not in outcomes.values() and "error" not in outcomes.values()
    dropmon = {k: v for k, v in outcomes.items() if "test_dropmon_counts" in k}
    assert len(dropmon) == 6 and set(dropmon.values()) == {"passed"}, dropmon
    clone = {k: v for k, v in outcomes.items() if "test_clone_summary_counts" in k}
    assert set(clone.values()) == ({"skipped"} if series == "5.10" else {"passed"}), clone


def test_ovs_tools_beside_bpftrace_in_a_61_guest(lab_host: None) -> None:
    """The same run with bpftrace beside the tools (the peers' userland): actions and receives
    agree; the differences are explained in the guest tests' docstrings."""
    from pybpfasm.lab.vm import userland

    kernel = kernels.debian("6.1")
    argv = ["python3", "-m", "pytest", "-q", "tests/kernel/test_ovs_tools.py", "-k", "bpftrace"]
    config = qemu.GuestConfig(timeout=1200, packages=userland.with_peers(kernel.release))
    result = qemu.run(kernel, argv, config)
    outcomes = junit_outcomes(result.files["junit.xml"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert len(outcomes) == 3 and set(outcomes.values()) == {"passed"}, outcomes
