"""The host programs the VM lab runs, and the Debian packages that provide them."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

from .errors import HostToolMissing, LabError

#: program -> Debian package providing it (the one list of host requirements)
HOST_TOOLS: dict[str, str] = {
    "qemu-system-x86_64": "qemu-system-x86",
    "debootstrap": "debootstrap",
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "depmod": "kmod",
    "zstd": "zstd",
}

#: not a program on PATH, but a file the initramfs is built from
BUSYBOX_STATIC = "/bin/busybox"
BUSYBOX_PACKAGE = "busybox-static"
PT_INTERP = 3


def require(program: str) -> str:
    """Absolute path of *program*, or a one-line error naming the fix."""
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if path is None:
        raise HostToolMissing(
            f"{program} is not installed (Debian package {HOST_TOOLS[program]}); "
            "run 'pybpfasm lab vm setup' as root"
        )
    return path


def busybox() -> str:
    """Path of a statically linked busybox for the initramfs."""
    if not _is_static(BUSYBOX_STATIC):
        raise HostToolMissing(
            f"no static busybox at {BUSYBOX_STATIC} (Debian package {BUSYBOX_PACKAGE}); "
            "run 'pybpfasm lab vm setup' as root"
        )
    return BUSYBOX_STATIC


def _is_static(path: str) -> bool:
    """True for a 64-bit ELF executable without a PT_INTERP program header."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    if not head.startswith(b"\x7fELF\x02"):
        return False
    (phoff,) = struct.unpack_from("<Q", head, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    types = (struct.unpack_from("<I", head, phoff + i * phentsize)[0] for i in range(phnum))
    return PT_INTERP not in types


def missing_packages() -> list[str]:
    """Debian packages to install so every host tool is present."""
    missing = [pkg for prog, pkg in HOST_TOOLS.items() if not _present(prog)]
    if not _is_static(BUSYBOX_STATIC):
        missing.append(BUSYBOX_PACKAGE)
    return sorted(set(missing))


def _present(program: str) -> bool:
    return bool(shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin"))


def install_missing() -> list[str]:
    """apt-get install whatever :func:`missing_packages` lists; returns what it installed."""
    packages = missing_packages()
    if not packages:
        return []
    if os.geteuid() != 0:
        raise LabError(f"installing {' '.join(packages)} needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise LabError(f"{' '.join(argv[:2])} failed: {' '.join(tail)}")
    return packages
