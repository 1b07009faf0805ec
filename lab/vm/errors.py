"""Errors of the VM lab; all are user-facing one-liners (see pybpfasm.errors)."""

from __future__ import annotations

from pybpfasm.errors import BPFError


class LabError(BPFError):
    """A VM lab step failed for a reason the message explains."""


class HostToolMissing(LabError):
    """A host program the lab needs is not installed."""


class KernelNotFound(LabError):
    """No kernel matches the requested version."""


class GuestTimeout(LabError):
    """The guest did not power off in time and was killed."""

    exit_code = 124
