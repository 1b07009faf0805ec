"""`pybpfasm lab vm` refuses bad input with one line and a non-zero status."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pybpfasm.lab.vm.kernels import Kernel


def pybpfasm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pybpfasm.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["lab", "vm", "run", "--kernel", "6.1"], 2, "give the guest command after '--'"),
        (
            ["lab", "vm", "run", "--kernel", "/no/such/vmlinuz", "--", "true"],
            1,
            "kernel image /no/such/vmlinuz does not exist",
        ),
        (
            ["lab", "vm", "run", "--kernel", "6.1", "--modules", "/tmp", "--", "true"],
            2,
            "--modules goes with a kernel given by path",
        ),
        (["lab", "vm", "run", "--timeout", "0", "--", "true"], 2, "--timeout must be > 0"),
    ],
)
def test_bad_input_is_one_line(args: list[str], status: int, message: str) -> None:
    done = pybpfasm(*args)
    assert done.returncode == status
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_group_is_an_argparse_error() -> None:
    done = pybpfasm("lab", "nope")
    assert done.returncode == 2 and "invalid choice: 'nope'" in done.stderr


def test_lab_help_lists_the_vm_group() -> None:
    done = pybpfasm("lab", "--help")
    assert done.returncode == 0
    assert re.search(r"^ +vm +qemu micro-VMs", done.stdout, re.M)


@pytest.mark.vm
def test_kernels_lists_the_cache_and_what_debian_has(kernel_61: Kernel) -> None:
    done = pybpfasm("lab", "vm", "kernels")
    assert done.returncode == 0, done.stderr
    cached, fetchable = done.stdout.split("fetchable from Debian:")
    assert kernel_61.release in cached
    assert re.search(r"^ +6\.1 +6\.1\.\d+-\d+-amd64$", fetchable, re.M)
    assert re.search(r"^ +5\.10 +5\.10\.\d+-\d+-amd64$", fetchable, re.M)
