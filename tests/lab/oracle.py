"""An oracle independent of the drop monitor: an eDSL ``skb:kfree_skb`` program that counts
drops per (namespace inode, reason) for the lab's namespaces only.

It reports the keys ``netns`` and ``reason``; the runner compares expectations projected on
those keys. Reason numbers are named from this kernel's BTF (enum skb_drop_reason).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from pybpfasm.btf import BTF
from pybpfasm.dsl import Collection, HashMap, Record, tracepoint, u32, u64

REASON_PREFIX = "SKB_DROP_REASON_"


class DropKey(Record):
    netns: u32
    reason: u32


drops = HashMap(DropKey, u64, 256, name="lab_drops")


@tracepoint("skb", "kfree_skb")
def count_lab_drops(b, ctx, inodes: tuple[int, ...]) -> None:
    skb = ctx.skbaddr.cast("struct sk_buff")
    inum = b.read(skb.dev.nd_net.net.ns.inum)
    ours = inum == inodes[0]
    for other in inodes[1:]:  # unrolled at build time: one comparison per lab namespace
        ours = ours | (inum == other)
    with b.if_(~ours):
        b.return_(0)
    key = b.stack(DropKey, "key")
    b.zero(key)
    key.netns = inum
    key.reason = ctx.reason
    drops.increment(b, key)


class ReasonCounter:
    """The oracle attached for a ``with`` block; ``events()`` turns count increases into
    events, in the order it sees them."""

    keys = frozenset({"netns", "reason"})

    def __init__(self, inodes: Iterable[int]) -> None:
        self.inodes = tuple(inodes)
        names = BTF.kernel().enum("skb_drop_reason")
        self.reason_names = {v: k.removeprefix(REASON_PREFIX) for k, v in names.items()}
        self._seen: Counter = Counter()
        self._events: list[dict[str, Any]] = []
        self._coll = Collection()

    def __enter__(self) -> ReasonCounter:
        self._coll.__enter__()
        self._coll.load(count_lab_drops, self.inodes)
        self._coll.attach(count_lab_drops)
        return self

    def __exit__(self, *exc: object) -> None:
        self._coll.__exit__(*exc)

    def events(self) -> list[dict[str, Any]]:
        for key, count in self._coll.map(drops).items():
            pair = (key.netns, key.reason)
            for _ in range(count - self._seen[pair]):
                self._events.append({"netns": key.netns, "reason": self.reason_names[key.reason]})
            self._seen[pair] = count
        return list(self._events)
