"""The one error a filter expression can raise."""

from __future__ import annotations

from pybpfasm.errors import UsageError


class FilterError(UsageError):
    """A filter expression that cannot be compiled: ``filter: column N: what is wrong``.

    ``column`` counts from 1; ``reason`` is the message without the prefix.
    """

    def __init__(self, column: int, reason: str) -> None:
        self.column, self.reason = column, reason
        super().__init__(f"filter: column {column}: {reason}")
