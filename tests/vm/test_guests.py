"""Guests beyond the smoke test: exit codes, timeouts, OVS, other kernels (PYBPFASM_VM_FULL=1)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pybpfasm.lab.vm import kernels, qemu
from pybpfasm.lab.vm.errors import GuestTimeout
from pybpfasm.lab.vm.matrix import junit_outcomes

from .conftest import full_lab

pytestmark = [pytest.mark.vm, full_lab]


def test_exit_code_and_both_streams_come_back(kernel_61: kernels.Kernel) -> None:
    result = qemu.run(
        kernel_61, ["sh", "-c", "echo out; echo err >&2; exit 7"], qemu.GuestConfig(timeout=120)
    )
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "err\n")


def _qemu_processes_using(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return [pid for pid in pids if pid != os.getpid()]


def test_hanging_guest_is_killed_at_its_timeout(kernel_61: kernels.Kernel) -> None:
    with pytest.raises(GuestTimeout, match=r"did not finish within 15 s and was killed") as caught:
        qemu.run(kernel_61, ["sleep", "600"], qemu.GuestConfig(timeout=15))
    job = Path(str(caught.value).rsplit("logs kept in ", 1)[1].rstrip(")"))
    assert job.is_dir()
    assert _qemu_processes_using(job) == []
    shutil.rmtree(job)


def test_ovs_bridge_forwards_and_drops_in_a_guest(kernel_61: kernels.Kernel) -> None:
    result = qemu.run(
        kernel_61,
        ["python3", "-m", "pytest", "-q", "tests/vm/guest"],
        qemu.GuestConfig(timeout=240),
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    outcomes = junit_outcomes(result.files["junit.xml"])
    assert outcomes == {
        "tests.vm.guest.test_ovs::test_bridge_forwards_then_drop_flow_counts_every_dropped_packet": "passed"
    }


@pytest.mark.parametrize("series", ["5.10", "6.12"])
def test_other_debian_kernels_boot(series: str, lab_host: None) -> None:
    kernel = kernels.debian(series)
    result = qemu.run(
        kernel, ["python3", "-c", "import pybpfasm, platform; print(platform.release())"]
    )
    assert (result.exit_code, result.stdout) == (0, f"{kernel.release}\n")
    assert kernel.release.startswith(series + ".")


def test_user_supplied_kernel_boots_from_its_bzimage_and_modules(kernel_61: kernels.Kernel) -> None:
    assert kernel_61.modules is not None
    bzimage = kernel_61.modules.parents[2] / "boot" / f"vmlinuz-{kernel_61.release}"
    kernel = kernels.user(bzimage, kernel_61.modules)
    assert kernel.origin == "user" and kernel.release == kernel_61.release
    result = qemu.run(kernel, ["sh", "-c", "uname -r; lsmod | grep -c '^openvswitch '"])
    assert (result.exit_code, result.stdout) == (0, f"{kernel_61.release}\n1\n")


def test_missing_kernel_version_names_those_that_exist(lab_host: None) -> None:
    with pytest.raises(kernels.KernelNotFound) as caught:
        kernels.debian("4.19")
    message = str(caught.value)
    for series in ("5.10", "6.1", "6.12"):
        assert f"{series} (" in message
    assert "--kernel /path/to/vmlinuz" in message


def test_kprobe_and_fentry_tests_pass_in_a_61_guest(kernel_61: kernels.Kernel) -> None:
    """The kernel tests that skip on the local kernel (no kprobes, fentry EPERM) really run here."""
    argv = [
        "python3",
        "-m",
        "pytest",
        "-q",
        "tests/kernel/test_kprobes.py",
        "tests/kernel/test_fentry.py",
    ]
    result = qemu.run(kernel_61, argv, qemu.GuestConfig(timeout=400))
    outcomes = junit_outcomes(result.files["junit.xml"])
    assert result.exit_code == 0, result.stdout + result.stderr
    kprobe = {k: v for k, v in outcomes.items() if "test_kprobe_counts_exactly_the_calls" in k}
    fentry = {k: v for k, v in outcomes.items() if "test_fentry" in k}
    assert kprobe and set(kprobe.values()) == {"passed"}
    assert fentry and set(fentry.values()) == {"passed"}


@pytest.mark.parametrize("series", ["5.10", "6.1", "6.12"])
def test_lab_demo_matches_every_scenario_on_debian_kernels(series: str, lab_host: None) -> None:
    """The drop monitor sees exactly each scenario's declared drops on other kernels too
    (per-kernel reasons and counts from lab/scenarios/drops.toml)."""
    result = qemu.run(kernels.debian(series), ["python3", "-m", "pybpfasm.cli", "lab", "demo"],
                      qemu.GuestConfig(timeout=300))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "12/12 scenarios matched exactly" in result.stdout, result.stdout
