"""Lab hosts behind one interface: run a command, copy files in and out.

Three kinds: a local network namespace, a qemu guest (one boot per command,
with a persistent ``/work`` directory shared from the host), and a Vagrant
machine reached over SSH with fabric (the ``lab`` extra) from ``vagrant ssh-config``.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Protocol, Sequence

from . import qemu
from .errors import LabError
from .kernels import Kernel


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


class Host(Protocol):
    """What every lab host offers."""

    name: str

    def run(self, argv: Sequence[str], timeout: float = 300.0) -> CommandResult: ...

    def put(self, local: Path, remote: str) -> None: ...

    def get(self, remote: str, local: Path) -> None: ...


class NetnsHost:
    """A network namespace on this machine (shares the file system with the caller)."""

    def __init__(self, netns: str) -> None:
        self.name = netns

    def run(self, argv: Sequence[str], timeout: float = 300.0) -> CommandResult:
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def put(self, local: Path, remote: str) -> None:
        shutil.copy2(local, remote)

    def get(self, remote: str, local: Path) -> None:
        shutil.copy2(remote, local)


class GuestHost:
    """A qemu guest on *kernel*; files live in a host directory the guest sees as /work."""

    def __init__(self, kernel: Kernel, config: qemu.GuestConfig | None = None) -> None:
        self.name = f"guest-{kernel.release}"
        self.kernel = kernel
        self._workdir = tempfile.TemporaryDirectory(prefix="lab-work-")
        self.config = replace(config or qemu.GuestConfig(), workdir=Path(self._workdir.name))

    def run(self, argv: Sequence[str], timeout: float = 300.0) -> CommandResult:
        result = qemu.run(self.kernel, argv, replace(self.config, timeout=timeout))
        return CommandResult(result.exit_code, result.stdout, result.stderr)

    def put(self, local: Path, remote: str) -> None:
        shutil.copy2(local, self._host_path(remote))

    def get(self, remote: str, local: Path) -> None:
        shutil.copy2(self._host_path(remote), local)

    def _host_path(self, remote: str) -> Path:
        path = PurePosixPath(remote)
        if path.parts[:2] != ("/", "work") or ".." in path.parts:
            raise LabError(f"guest files live under /work, not {remote}")
        target = Path(self._workdir.name, *path.parts[2:])
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def close(self) -> None:
        self._workdir.cleanup()

    def __enter__(self) -> GuestHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def vagrant_ssh_config(machine: str, vagrant_dir: Path) -> dict[str, str]:
    """``vagrant ssh-config MACHINE`` as a dict of SSH options (HostName, User, Port, IdentityFile)."""
    done = subprocess.run(
        ["vagrant", "ssh-config", machine],
        cwd=vagrant_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise LabError(f"vagrant ssh-config {machine} failed: {done.stderr.strip()[-300:]}")
    options = {}
    for line in done.stdout.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and value:
            options.setdefault(key, value.strip().strip('"'))
    return options


class VagrantHost:
    """A Vagrant machine, over SSH with fabric; commands run as root through sudo."""

    def __init__(self, machine: str, vagrant_dir: Path) -> None:
        try:
            from fabric import Connection
        except ImportError:
            raise LabError("Vagrant hosts need fabric: pip install 'pybpfasm[lab]'") from None
        self.name = machine
        ssh = vagrant_ssh_config(machine, vagrant_dir)
        self._conn = Connection(
            ssh["HostName"], user=ssh.get("User", "vagrant"), port=int(ssh.get("Port", "22")),
            connect_kwargs={"key_filename": ssh["IdentityFile"]},
        )  # fmt: skip

    def run(self, argv: Sequence[str], timeout: float = 300.0) -> CommandResult:
        done = self._conn.sudo(
            shlex.join(argv), warn=True, hide=True, timeout=timeout, in_stream=False
        )
        return CommandResult(done.return_code, done.stdout, done.stderr)

    def put(self, local: Path, remote: str) -> None:
        self._conn.put(str(local), remote)

    def get(self, remote: str, local: Path) -> None:
        self._conn.get(remote, str(local))

    def close(self) -> None:
        self._conn.close()
