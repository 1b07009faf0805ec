"""Latency between consecutive hooks of the same skb, as log2 histograms per edge, counted in
the kernel.

::

    edges = EdgeLatency("dp")                 # its two maps, named dp_last and dp_edges
    edges.step(b, skb_ptr, hook, now)         # at a hook: count the edge from the skb's last hook
    edges.forget(b, skb_ptr)                  # where the skb ends
    edges.histograms(coll, names)             # {(from, to): {slot: count}} in user space

The slot of a nanosecond delta is :func:`~.hist.log2_index`'s (its bit length, 1 for 0),
computed with six compare-and-shift steps.
"""

from __future__ import annotations

from typing import Any

from pybpfasm.dsl import HashMap, LRUHashMap, Record, u8, u64


class Edge(Record):
    src: u8
    dst: u8
    slot: u8


class Last(Record):
    ts: u64
    hook: u8


def log2_slot(b, value):
    """``log2_index(value)`` in the program: the bit length of *value*, 1 for 0."""
    v = b.var(value, u64)
    slot = b.var(1, u64)
    for shift in (32, 16, 8, 4, 2, 1):
        with b.if_(v >= (1 << shift)):
            v.set(v >> shift)
            slot.set(slot + shift)
    return slot


class EdgeLatency:
    """The per-skb last hook (an LRU map: skbs freed where no hook sees them age out) and the
    per-edge histogram counts."""

    def __init__(self, prefix: str, skbs: int = 16384) -> None:
        self.last = LRUHashMap(u64, Last, skbs, name=f"{prefix}_last")
        self.edges = HashMap(Edge, u64, 4096, name=f"{prefix}_edges")

    def step(self, b, skb_ptr, hook: int, now) -> None:
        with self.last.lookup(b, skb_ptr) as prev:
            key = b.stack(Edge, "edge key")
            b.zero(key)
            key.src = prev.hook
            key.dst = hook
            key.slot = log2_slot(b, now - prev.ts)
            self.edges.increment(b, key)
        mine = b.stack(Last, "last hook")
        b.zero(mine)
        mine.ts = now
        mine.hook = hook
        self.last.update(b, skb_ptr, mine)

    def forget(self, b, skb_ptr) -> None:
        self.last.delete(b, skb_ptr)

    def histograms(self, coll: Any, names: tuple[str, ...]) -> dict[tuple[str, str], dict[int, int]]:
        """``{(from hook, to hook): {slot: count}}`` so far."""
        out: dict[tuple[str, str], dict[int, int]] = {}
        for key, count in coll.map(self.edges).items():
            out.setdefault((names[key.src], names[key.dst]), {})[key.slot] = count
        return out
