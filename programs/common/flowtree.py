"""Per-packet call trees from function entry and return events, correlated by packet pointer
(not by thread: one softirq handles many packets, and one packet crosses threads).

::

    trees = FlowTrees()
    trees.entry(packet_key, skb, func, ts, info)    # a call starts: a child of the packet's open call
    trees.exit(skb, func, ts, ret)                  # the packet's innermost open call of func ends
    trees.all()                                     # every packet's tree, oldest first

A packet is its skb pointer and IP header (*packet_key*): a pointer the kernel reuses for
another packet starts another tree.  Its tree is every top-level call made with it, in time
order, each with the calls nested in it and its duration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable


@dataclass
class Call:
    func: str
    start: int
    end: int | None = None
    ret: int | None = None
    calls: list[Call] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"func": self.func, "start_ns": self.start,
                "duration_ns": None if self.end is None else self.end - self.start,
                "ret": self.ret, "calls": [c.as_dict() for c in self.calls]}


@dataclass
class Flow:
    """One packet: what is known of it, and its calls."""

    key: Hashable
    info: dict[str, Any]
    calls: list[Call] = field(default_factory=list)
    open: list[Call] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.info, "calls": [c.as_dict() for c in self.calls]}


class FlowTrees:
    """The packets seen so far, by skb pointer."""

    def __init__(self) -> None:
        self.flows: list[Flow] = []
        #: the packet each skb pointer carries now
        self._current: dict[int, Flow] = {}

    def entry(self, key: Hashable, skb: int, func: str, ts: int, info: dict[str, Any]) -> None:
        flow = self._current.get(skb)
        if flow is None or (flow.key != key and not flow.open):
            flow = Flow(key, info)
            self.flows.append(flow)
            self._current[skb] = flow
        call = Call(func, ts)
        (flow.open[-1].calls if flow.open else flow.calls).append(call)
        flow.open.append(call)

    def exit(self, skb: int, func: str, ts: int, ret: int | None) -> bool:
        """Close the innermost open call of *func* with *skb*; False if there is none."""
        flow = self._current.get(skb)
        if flow is None:
            return False
        for depth in range(len(flow.open) - 1, -1, -1):
            call = flow.open[depth]
            if call.func == func:
                call.end, call.ret = ts, ret
                del flow.open[depth:]  # calls opened inside it and never closed end with it
                return True
        return False

    def depth(self, skb: int) -> int:
        """How many calls are open with *skb* now."""
        flow = self._current.get(skb)
        return len(flow.open) if flow is not None else 0

    def all(self) -> list[Flow]:
        """Take every packet, open calls and all."""
        done, self.flows = self.flows, []
        self._current.clear()
        return done
