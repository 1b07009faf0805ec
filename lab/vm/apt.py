"""A private apt configuration for Debian suites the host does not use.

The host's own sources are never modified: the lab keeps its own source list,
state and package cache under the cache directory and passes them with ``-o``.
The archive addresses are taken from the host's apt sources.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from .errors import LabError
from .hosttools import require
from .paths import cache_root

#: suites the lab may fetch from (kernels and userlands)
SUITES = ("bookworm", "bullseye")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
HOST_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
#: refresh the private package lists after this many seconds
LISTS_MAX_AGE = 24 * 3600


def host_archives() -> tuple[str, str]:
    """(archive URI, security URI) read from the host's apt sources."""
    entries: list[tuple[str, str]] = []  # (uri, suite)
    listing, parts = HOST_SOURCES
    files = [listing, *(sorted(parts.glob("*")) if parts.is_dir() else [])]
    for path in files:
        if not path.is_file() or not path.name.endswith((".list", ".sources")):
            continue
        text = path.read_text(errors="replace")
        if path.name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                for uri in fields.get("URIs", "").split():
                    entries += [(uri, suite) for suite in fields.get("Suites", "").split()]
        else:
            for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
                entries.append((m.group(1), m.group(2)))
    archive = next((u for u, s in entries if "/debian" in u and "-" not in s), None)
    security = next((u for u, s in entries if s.endswith("-security")), None)
    if archive is None or security is None:
        raise LabError("cannot find Debian archive and security sources in /etc/apt (need both)")
    return archive.rstrip("/"), security.rstrip("/")


class PrivateApt:
    """apt-get / apt-cache bound to the lab's own sources, state and cache."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root() / "apt"
        self.sources = self.root / "sources.list"
        self._options: list[str] = []
        for key, sub in (("Dir::State", "state"), ("Dir::Cache", "cache")):
            self._options += ["-o", f"{key}={self.root / sub}"]
        self._options += [
            "-o", f"Dir::Etc::sourcelist={self.sources}",
            "-o", f"Dir::Etc::sourceparts={self.root / 'sources.d'}",
            "-o", "Dir::State::status=/dev/null",
            "-o", "APT::Architecture=amd64",
        ]  # fmt: skip

    def ensure_lists(self) -> None:
        """Write the source list and run ``apt-get update`` when lists are missing or old."""
        archive, security = host_archives()
        lines = []
        for suite in SUITES:
            lines.append(f"deb [signed-by={KEYRING}] {archive} {suite} main")
            lines.append(f"deb [signed-by={KEYRING}] {security} {suite}-security main")
        wanted = "\n".join(lines) + "\n"
        for sub in ("state/lists/partial", "cache/archives/partial", "sources.d"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        stamp = self.root / "state" / "updated"
        fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE
        if fresh and self.sources.exists() and self.sources.read_text() == wanted:
            return
        self.sources.write_text(wanted)
        self._run("apt-get", "update", "-qq")
        stamp.touch()

    def package_names(self, pattern: str) -> list[str]:
        """Names of packages matching the regular expression *pattern*."""
        out = self._run("apt-cache", "pkgnames")
        rx = re.compile(pattern)
        return sorted(name for name in out.split() if rx.fullmatch(name))

    def download(self, package: str, dest: Path) -> Path:
        """``apt-get download`` *package* into *dest*; returns the .deb path."""
        dest.mkdir(parents=True, exist_ok=True)
        self._run("apt-get", "download", "-qq", package, cwd=dest)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if not debs:
            raise LabError(f"apt-get download {package} produced no .deb")
        return debs[-1]

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        argv = [require(tool), *self._options, *args]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=900)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
            raise LabError(f"{tool} {args[0]} failed: {tail}")
        return done.stdout
