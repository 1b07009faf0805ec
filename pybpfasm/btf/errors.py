"""The error every BTF problem raises: bad data, unknown names, bad field paths."""

from __future__ import annotations

from typing import Callable

from ..errors import BPFError


class BTFError(BPFError):
    """Truncated or corrupted BTF, an unknown type or field name, or a bad field path.

    ``detail`` (optional) computes the rest of the message ("did you mean ...",
    the names there are) only when the message is shown: code that catches a
    miss and moves on (``has_field``, a fallback lookup) never pays for it.
    """

    def __init__(self, message: str, detail: Callable[[], str] | None = None) -> None:
        super().__init__(message)
        self._detail = detail

    def __str__(self) -> str:
        if self._detail is not None:
            detail, self._detail = self._detail, None
            try:
                self.args = (self.args[0] + detail(),)
            except BTFError:  # the names around a miss are corrupt too: the miss alone is the message
                pass
        return super().__str__()
