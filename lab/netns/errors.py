"""Errors of the namespace lab; all are one-line messages for the user (see pybpfasm.errors)."""

from __future__ import annotations

from pybpfasm.errors import BPFError, UsageError


class LabError(BPFError):
    """A lab step failed (a command, the kernel, the monitor) for a reason the message gives."""


class DeclarationError(UsageError):
    """A topology or scenario file is malformed; the message names the file and the entry."""
