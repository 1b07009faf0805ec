"""The error every BTF problem raises: bad data, unknown names, bad field paths."""

from __future__ import annotations

from ..errors import BPFError


class BTFError(BPFError):
    """Truncated or corrupted BTF, an unknown type or field name, or a bad field path."""
