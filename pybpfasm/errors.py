"""The exception hierarchy shared by every layer.

Every error a user can cause derives from :class:`BPFError`; the CLI prints
such errors as one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class BPFError(Exception):
    """Base class of every error pybpfasm raises on purpose."""

    #: process exit status the CLI uses for this error
    exit_code = 1


class UsageError(BPFError):
    """Bad command-line or API input (exit status 2, like argparse)."""

    exit_code = 2
