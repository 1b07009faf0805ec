"""The guests' Debian userland: a debootstrap tree built once and shared read-only.

The tree is keyed by suite and package list, built into a temporary directory
and renamed into place only when complete, so an interrupted build is redone.
A tree with more packages than the base one (:func:`with_peers`) starts as a copy
of the base tree and only installs what it adds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from .apt import host_archives
from .errors import LabError
from .hosttools import require
from .locks import exclusive
from .paths import cache_root

SUITE = "bookworm"
#: what the guests run: the project's runtime deps, its test runner, and the lab's tools
PACKAGES = (
    "python3",
    "python3-cffi",
    "python3-pyroute2",
    "python3-pytest",
    "kmod",
    "iproute2",
    "iputils-ping",
    "procps",
    "nftables",
    "openvswitch-switch",
)
#: the peers the process tools are compared with (bcc compiles against the guest kernel's headers)
PEERS = ("bpfcc-tools", "bpftrace")
META_FILE = "userland.json"
BUILD_TIMEOUT = 1800


def userland_dir(suite: str = SUITE, packages: tuple[str, ...] = PACKAGES) -> Path:
    key = hashlib.sha256(" ".join((suite, *sorted(packages))).encode()).hexdigest()[:12]
    return cache_root() / "userland" / f"{suite}-{key}"


def with_peers(release: str) -> tuple[str, ...]:
    """The base packages, the peers, and the headers of kernel *release* (``6.1.0-57-amd64``)."""
    return (*PACKAGES, *PEERS, f"linux-headers-{release}")


def ensure(suite: str = SUITE, packages: tuple[str, ...] = PACKAGES) -> Path:
    """The root of a ready userland tree, running debootstrap (or copying the base tree) first if needed."""
    target = userland_dir(suite, packages)
    if (target / META_FILE).exists():
        return target
    extends = set(packages) > set(PACKAGES)
    base = ensure(suite) if extends else None  # before the lock: the base build takes it too
    with exclusive(target.parent / ".lock"):
        if (target / META_FILE).exists():
            return target
        work = target.with_name(target.name + ".tmp")
        shutil.rmtree(work, ignore_errors=True)
        archive, security = host_archives()
        if base is not None:
            _run(["cp", "-a", str(base), str(work)], work)
            (work / META_FILE).unlink()
        else:
            # debootstrap's resolver does not follow virtual packages: it lays the base, apt adds the rest
            _run([require("debootstrap"), "--variant=minbase", suite, str(work), archive], work)
        # the security suite too: the lab's kernels (and so their headers) come from there
        with open(work / "etc/apt/sources.list", "a") as sources:
            sources.write(f"deb {security} {suite}-security main\n")
        shutil.copy("/etc/resolv.conf", work / "etc/resolv.conf")
        policy = work / "usr/sbin/policy-rc.d"  # no services start inside the build chroot
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        chroot_apt = ["chroot", str(work), "apt-get", "-q", "-y", "-o", "Dpkg::Use-Pty=0"]
        _run([*chroot_apt, "update"], work)
        _run([*chroot_apt, "install", "--no-install-recommends", *packages], work)
        _run([*chroot_apt, "clean"], work)
        policy.unlink()
        (work / "etc/resolv.conf").unlink()
        meta = {"suite": suite, "packages": list(packages)}
        (work / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        work.rename(target)
    return target


def _run(argv: list[str], root: Path) -> None:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C",
    }
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv[:3])} did not finish in {BUILD_TIMEOUT} s") from None
    if done.returncode != 0:
        log = root / "debootstrap" / "debootstrap.log"
        detail = log.read_text(errors="replace") if log.exists() else done.stderr or done.stdout
        last = detail.strip().splitlines()[-1:] or ["(no output)"]
        raise LabError(f"building the userland failed at '{' '.join(argv[:3])}': {last[0]}")
