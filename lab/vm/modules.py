"""Kernel module lookup in a depmod-ed ``lib/modules/<release>`` tree."""

from __future__ import annotations

import gzip
import lzma
import re
import subprocess
from pathlib import Path

from .errors import LabError
from .hosttools import require

_SUFFIX = re.compile(r"\.ko(\.xz|\.zst|\.gz)?$")


def module_name(path: str) -> str:
    """``kernel/net/9p/9pnet_virtio.ko.xz`` -> ``9pnet_virtio`` (dashes read as underscores)."""
    return _SUFFIX.sub("", path.rsplit("/", 1)[-1]).replace("-", "_")


class ModuleTree:
    """The modules of one kernel: dependencies from modules.dep, built-ins from modules.builtin."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._deps: dict[str, tuple[str, list[str]]] = {}
        for line in (root / "modules.dep").read_text().splitlines():
            path, _, deps = line.partition(":")
            self._deps[module_name(path)] = (path, deps.split())
        builtin = root / "modules.builtin"
        names = builtin.read_text().split() if builtin.exists() else []
        self._builtin = {module_name(p) for p in names}

    def load_order(self, wanted: list[str]) -> list[str]:
        """Relative paths of *wanted* and their dependencies, dependencies first; built-ins omitted."""
        order: list[str] = []
        for raw in wanted:
            name = raw.replace("-", "_")
            if name in self._builtin:
                continue
            if name not in self._deps:
                raise LabError(f"module {raw} is neither built in nor in {self.root}")
            path, deps = self._deps[name]
            for item in [*reversed(deps), path]:
                if item not in order:
                    order.append(item)
        return order

    def read(self, relative: str) -> bytes:
        """The module's ELF bytes, decompressed (busybox insmod loads plain .ko only)."""
        data = (self.root / relative).read_bytes()
        if relative.endswith(".xz"):
            return lzma.decompress(data)
        if relative.endswith(".gz"):
            return gzip.decompress(data)
        if relative.endswith(".zst"):
            done = subprocess.run(
                [require("zstd"), "-d", "-c", "-q"], input=data, capture_output=True
            )
            if done.returncode != 0:
                raise LabError(f"zstd could not unpack {relative}")
            return done.stdout
        return data
