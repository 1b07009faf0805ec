"""Pins of the command tools in bpffs: one directory per tool and network namespace.

A tool that runs with no daemon (``xdp-l2fwd attach`` exits, the forwarder stays) keeps
its programs, maps and links pinned under ``/sys/fs/bpf/pybpfasm/TOOL/netns-INODE``, so
later commands in that namespace find them and ``detach`` removes them.  A new set of
pins is made in a staging directory named after the process and renamed into place, so a
killed command leaves either every pin or none at the final path.  The next command of
that tool removes what a killed command left in staging, and the pins of namespaces that
were deleted with the tool still attached.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from typing import Iterator

from pybpfasm.errors import UsageError
from pybpfasm.sys.bpffs import DEFAULT_ROOT, ensure_mounted

#: the project's own directory in bpffs
ROOT = f"{DEFAULT_ROOT}/pybpfasm"
_STAGING, _NETNS = "staging-", "netns-"


def netns_inode(netns: str | None) -> int:
    """The inode of network namespace *netns* (a name under /run/netns or a path; None: ours)."""
    path = "/proc/self/ns/net" if netns is None else (netns if "/" in netns else f"/run/netns/{netns}")
    try:
        return os.stat(path).st_ino
    except OSError as err:
        raise UsageError(f"no network namespace {netns!r}: {err.strerror}") from None


class PinDir:
    """The pins of *tool* in network namespace *netns* (None: this process's)."""

    def __init__(self, tool: str, netns: str | None) -> None:
        self.tool, self.netns = tool, netns
        self.base = f"{ROOT}/{tool}"
        self.path = f"{self.base}/{_NETNS}{netns_inode(netns)}"
        clean_stale(self.base)
        clean_orphans(self.base)

    def __repr__(self) -> str:
        return f"<PinDir {self.path}>"

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def file(self, name: str) -> str:
        return f"{self.path}/{name}"

    def names(self) -> list[str]:
        """The pins there now (none when the directory is absent)."""
        try:
            return sorted(os.listdir(self.path))
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def staging(self) -> Iterator[str]:
        """A fresh directory to pin into; renamed to :attr:`path` when the block ends
        (removed instead if it raises).  :attr:`path` must not exist."""
        ensure_mounted(DEFAULT_ROOT)
        os.makedirs(self.base, exist_ok=True)
        tmp = f"{self.base}/{_STAGING}{os.getpid()}-{os.path.basename(self.path)}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o700)
        try:
            yield tmp
            os.rename(tmp, self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def unpin(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.file(name))

    def remove(self) -> list[str]:
        """Remove every pin and the directory; the names removed."""
        names = self.names()
        for name in names:
            self.unpin(name)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(self.path)
        for empty in (self.base, ROOT):  # the tool's and the project's, once empty
            with contextlib.suppress(OSError):
                os.rmdir(empty)
        return names


def clean_stale(base: str) -> None:
    """Remove the staging directories under *base* of processes that no longer run."""
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.startswith(_STAGING):
            continue
        pid = entry[len(_STAGING):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(f"{base}/{entry}", ignore_errors=True)


def clean_orphans(base: str) -> None:
    """Remove the pins under *base* of network namespaces that no longer exist (deleted
    with the tool still attached: their devices, and so the attachments, are gone)."""
    try:
        entries = [e for e in os.listdir(base) if e.startswith(_NETNS)]
    except FileNotFoundError:
        return
    if not entries:
        return
    alive = _netns_inodes()
    for entry in entries:
        inode = entry[len(_NETNS):]
        if inode.isdigit() and int(inode) not in alive:
            shutil.rmtree(f"{base}/{entry}", ignore_errors=True)


def _netns_inodes() -> set[int]:
    """The inodes of every network namespace that exists: named ones and those of processes."""
    paths = [f"/run/netns/{n}" for n in _listdir("/run/netns")]
    paths += [f"/proc/{p}/ns/net" for p in _listdir("/proc") if p.isdigit()]
    inodes = set()
    for path in paths:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(path).st_ino)
    return inodes


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as err:
        return err.errno == errno.EPERM
    return True
