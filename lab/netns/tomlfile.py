"""Read a TOML file into a dict (tomllib on 3.11+, tomli before) with one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .errors import DeclarationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None


def read(path: Path) -> dict[str, Any]:
    """The parsed document at ``path``."""
    if tomllib is None:
        raise DeclarationError("reading lab files on Python < 3.11 needs tomli: pip install 'pybpfasm[lab]'")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as err:
        raise DeclarationError(f"{path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise DeclarationError(f"{path}: {err}") from None
    except UnicodeDecodeError as err:
        raise DeclarationError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except RecursionError:
        raise DeclarationError(f"{path}: arrays or tables nested too deep") from None
