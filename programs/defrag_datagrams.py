"""Datagrams followed in user space from ``defrag``'s events: which fragments each reassembly
queue held, how it ended, and the byte ranges it never held (holes).

An instance is one reassembly queue's life: it opens with a datagram's first fragment and
closes with its outcome (``reassembled``, ``timeout``, ``overlap``, ``too_far``,
``dropped``); a later fragment of the same key opens a new one, as in the kernel.
Fragments the kernel frees later (a timed-out or killed queue's) are matched to the
instance that holds a fragment of their exact span.  A queued fragment freed with no
network device (its tree node shares the device's place) carries no namespace: it goes
to the instance of that (addresses, ID, protocol) that holds its span, in any namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

#: (netns, family, src, dst, id, proto)
Key = tuple


@dataclass
class Piece:
    start: int
    end: int
    more: bool
    #: the queue refused it (duplicate, overlap, memory): it never filled its span
    refused: bool = False


@dataclass
class Datagram:
    key: Key
    first_ts: int
    pieces: list[Piece] = field(default_factory=list)
    outcome: Optional[str] = None
    end_ts: int = 0
    user: Optional[str] = None
    #: the length of a datagram seen only whole (reassembled before the tool saw fragments)
    whole: int = 0

    @property
    def total(self) -> Optional[int]:
        """The datagram's length, if its last fragment was seen."""
        if self.whole:
            return self.whole
        ends = [p.end for p in self.pieces if not p.more]
        return max(ends) if ends else None

    def held(self) -> list[tuple[int, int]]:
        """The merged spans the queue held."""
        spans = sorted((p.start, p.end) for p in self.pieces if not p.refused)
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [(s, e) for s, e in merged]

    def holes(self) -> list[list[Optional[int]]]:
        """Byte ranges the queue never held; an unknown end (no last fragment) is None."""
        if self.whole:
            return []
        out: list[list[Optional[int]]] = []
        at = 0
        for start, end in self.held():
            if start > at:
                out.append([at, start])
            at = max(at, end)
        total = self.total
        if total is None:
            out.append([at, None])
        elif at < total:
            out.append([at, total])
        return out

    def bytes(self) -> int:
        return self.whole or sum(e - s for s, e in self.held())

    def complete(self) -> bool:
        """Whether the held fragments make the whole datagram (the kernel's test)."""
        total = self.total
        return total is not None and self.held() == [(0, total)]

    def find(self, start: int, end: int) -> Optional[Piece]:
        """The latest held piece of exactly this span."""
        for piece in reversed(self.pieces):
            if (piece.start, piece.end) == (start, end) and not piece.refused:
                return piece
        return None

    def refuses(self, start: int, end: int) -> bool:
        """Whether the kernel would refuse the latest piece (it is within, or overlaps, one held
        before it: ``inet_frag_queue_insert``'s DUP and OVERLAP)."""
        earlier = [p for p in self.pieces[:-1] if not p.refused]
        return any(p.start < end and start < p.end for p in earlier)


class Tracker:
    """The open and closed datagrams; closed ones wait in :attr:`closed` for their summary."""

    def __init__(self) -> None:
        self.open: dict[Key, Datagram] = {}
        #: every closed instance, oldest first (late frees are matched against them)
        self.history: list[Datagram] = []
        self.closed: list[Datagram] = []

    def fragment(self, key: Key, ts: int, start: int, end: int, more: bool) -> Datagram:
        dgram = self.open.get(key)
        if dgram is None:
            dgram = self.open[key] = Datagram(key, ts)
        dgram.pieces.append(Piece(start, end, more))
        return dgram

    def close(self, dgram: Datagram, outcome: str, ts: int) -> None:
        if self.open.get(dgram.key) is dgram:
            del self.open[dgram.key]
        dgram.outcome, dgram.end_ts = outcome, ts
        self.history.append(dgram)
        self.closed.append(dgram)
        del self.history[:-4096]  # late frees come within a timeout of the close

    def holding(self, key: Key, start: int, end: int) -> Optional[Datagram]:
        """The instance that holds a piece of this span: open ones first, then the latest
        closed; a key whose namespace is 0 matches that key in any namespace."""
        for dgram in self._candidates(key):
            if dgram.find(start, end) is not None:
                return dgram
        return None

    def _candidates(self, key: Key) -> Iterator[Datagram]:
        def same(other: Key) -> bool:
            return other == key or (key[0] == 0 and other[1:] == key[1:])

        yield from (d for k, d in self.open.items() if same(k))
        yield from (d for d in reversed(self.history) if same(d.key))

    def complete_without_id(self, netns: int, family: int, src: str, dst: str,
                            proto: int) -> Optional[Datagram]:
        """The open, complete datagram of these addresses (IPv6 after conntrack's
        reassembly has removed the fragment header, and with it the ID)."""
        for (ns, fam, s, d, _, p), dgram in self.open.items():
            if (ns, fam, s, d, p) == (netns, family, src, dst, proto) and dgram.complete():
                return dgram
        return None

    def split_last(self, dgram: Datagram, outcome: str, ts: int) -> Datagram:
        """Close *dgram* without its latest piece, which starts the key's next instance
        (``ip_frag_reinit``: the queue is emptied, the fragment that found it too far stays)."""
        last = dgram.pieces.pop()
        self.close(dgram, outcome, ts)
        fresh = self.open[dgram.key] = Datagram(dgram.key, ts, [last])
        return fresh

    def take_closed(self) -> list[Datagram]:
        out, self.closed = self.closed, []
        return out

    def finish(self, ts: int) -> list[Datagram]:
        """Every closed datagram not yet reported, and the open ones as ``incomplete``."""
        for dgram in list(self.open.values()):
            self.close(dgram, "incomplete", ts)
        return self.take_closed()
