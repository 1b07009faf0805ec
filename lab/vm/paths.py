"""Where the VM lab keeps what it downloads and builds."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/pybpfasm/vm``, created on first use."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = Path(base) / "pybpfasm" / "vm"
    root.mkdir(parents=True, exist_ok=True)
    return root


def project_root() -> Path:
    """The source tree that guests mount at /project (the one holding ``pybpfasm``)."""
    import pybpfasm

    return Path(pybpfasm.__file__).resolve().parent.parent
