"""Lab hosts: the same run/put/get on a network namespace and on a qemu guest."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from pybpfasm.lab.vm import kernels
from pybpfasm.lab.vm.errors import LabError
from pybpfasm.lab.vm.hosts import GuestHost, Host, NetnsHost

from .conftest import full_lab


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    name = f"labtest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def round_trip(host: Host, remote_dir: str, tmp_path: Path) -> None:
    """put a file, change it on the host, get it back."""
    (tmp_path / "in.txt").write_text("hello\n")
    host.put(tmp_path / "in.txt", f"{remote_dir}/in.txt")
    done = host.run(
        [
            "sh",
            "-c",
            f"tr a-z A-Z < {remote_dir}/in.txt > {remote_dir}/out.txt; wc -c < {remote_dir}/in.txt",
        ]
    )
    assert done.exit_code == 0, done.stderr
    host.get(f"{remote_dir}/out.txt", tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text() == "HELLO\n"
    assert done.stdout.strip() == "6"


def test_netns_host(netns: str, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    round_trip(NetnsHost(netns), str(remote), tmp_path)


@pytest.mark.vm
@full_lab
def test_guest_host(kernel_61: kernels.Kernel, tmp_path: Path) -> None:
    with GuestHost(kernel_61) as host:
        round_trip(host, "/work", tmp_path)
        with pytest.raises(LabError, match="under /work"):
            host.put(tmp_path / "in.txt", "/etc/passwd")


@pytest.mark.skipif(
    not os.environ.get("PYBPFASM_VAGRANT_MACHINE"),
    reason="needs a running Vagrant machine: PYBPFASM_VAGRANT_MACHINE=local (see lab/vagrant/up-offline)",
)
def test_vagrant_host(tmp_path: Path) -> None:
    from pybpfasm.lab.vm.hosts import VagrantHost

    host = VagrantHost(os.environ["PYBPFASM_VAGRANT_MACHINE"], Path(__file__).parents[2] / "lab")
    try:
        round_trip(host, "/tmp", tmp_path)
    finally:
        host.close()
