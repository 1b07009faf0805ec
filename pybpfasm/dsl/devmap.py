"""Device maps for XDP redirects (``bpf_redirect_map``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..maps import MapSpec
from ..sys import MapType
from ..sys.consts import REDIRECT_BROADCAST, REDIRECT_EXCLUDE_INGRESS
from .maps import KeyType, MapDecl
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



class DevMapGroups(MapDecl):
    """Groups of egress devices, each a devmap_hash held in a hash of maps under *key*: a
    frame is sent to every device of a group at once (``BPF_F_BROADCAST``, 5.13)."""

    type = MapType.HASH_OF_MAPS

    def __init__(self, key: KeyType, max_entries: int, group_size: int, name: str = "") -> None:
        super().__init__(key, u32, max_entries, name)
        self.group_size = group_size

    def group_spec(self) -> MapSpec:
        """The spec of one group (the inner map)."""
        return MapSpec(MapType.DEVMAP_HASH, 4, 4, self.group_size, name=f"{self.name[:10]}_grp")

    def spec(self) -> MapSpec:
        spec = super().spec()
        spec.inner = self.group_spec()
        return spec

    def lookup_group(self, b, key: Operandish) -> Value:
        """The group at *key* (a map pointer), or NULL."""
        from .types import PtrType, Space

        k = self._on_stack(b, self.key, key, "map key")
        return b.call("map_lookup_elem", self.pointer(b), k, returns=PtrType(None, Space.MAP, nullable=True))

    @staticmethod
    def broadcast(b, group: Value) -> Value:
        """Redirect to every device of *group* (from :meth:`lookup_group`, checked non-NULL)
        but the one the frame came in on."""
        return b.call("redirect_map", group, 0, REDIRECT_BROADCAST | REDIRECT_EXCLUDE_INGRESS)


__all__ = ["DevMapGroups", "DevMapHash"]
