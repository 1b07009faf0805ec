"""Device maps for XDP redirects (``bpf_redirect_map``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sys import MapType
from .maps import MapDecl
from .scalars import u32

if TYPE_CHECKING:  # pragma: no cover
    from .values import Operandish, Value


class DevMapHash(MapDecl):
    """Egress devices for ``bpf_redirect_map``, keyed by any u32 (e.g. the ifindex).

    Values are ifindexes; the kernel resolves one in the network namespace of the
    process that updates the map.
    """

    type = MapType.DEVMAP_HASH

    def __init__(self, max_entries: int, name: str = "") -> None:
        super().__init__(u32, u32, max_entries, name)

    def redirect(self, b, key: Operandish, flags: Operandish = 0) -> Value:
        """``bpf_redirect_map``: XDP_REDIRECT, or the action in *flags*' low bits on a miss."""
        return b.call("redirect_map", self.pointer(b), key, flags)


__all__ = ["DevMapHash"]
