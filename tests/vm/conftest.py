"""Fixtures for the VM lab tests.

``vm``-marked tests boot qemu guests.  The CI suite boots one (the smoke test);
the rest boot more and run when PYBPFASM_VM_FULL=1 (ci/matrix sets it).
"""

from __future__ import annotations

import os

import pytest

from pybpfasm.lab.vm import hosttools, kernels, userland

FULL = os.environ.get("PYBPFASM_VM_FULL") == "1"

full_lab = pytest.mark.skipif(
    not FULL, reason="boots extra guests: set PYBPFASM_VM_FULL=1 (ci/matrix does)"
)


@pytest.fixture(scope="session")
def lab_host() -> None:
    """Host tools and the guest userland, installed and built by the lab's own setup step."""
    if os.geteuid() != 0:
        pytest.skip("the VM lab needs root (apt, debootstrap, 9p shares)")
    hosttools.install_missing()
    userland.ensure()


@pytest.fixture(scope="session")
def kernel_61(lab_host: None) -> kernels.Kernel:
    return kernels.debian("6.1")
