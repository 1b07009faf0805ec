"""File arguments of the CLI: '-' means standard input/output; errors are one line."""

from __future__ import annotations

import sys
from typing import Union

from ..errors import UsageError


def read_input(path: str, *, binary: bool) -> tuple[Union[str, bytes], str]:
    """Contents of *path* ('-' = stdin) and the name to use in messages."""
    if path == "-":
        return (sys.stdin.buffer.read() if binary else sys.stdin.read()), "<stdin>"
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read(), path
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not text; did you mean 'pybpfasm disasm'?") from None


def write_output(path: str, data: bytes) -> None:
    """Write *data* to *path* ('-' = stdout)."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
