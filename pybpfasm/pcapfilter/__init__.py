"""pcap-filter expressions (``tcp and dst port 80``) compiled into eBPF, in pure Python.

The grammar is what people type into tcpdump (``pcap-filter(7)``), with
libpcap's meaning for Ethernet frames (see :mod:`.semantics`); no libpcap is
needed.  ::

    from pybpfasm import pcapfilter

    flt = pcapfilter.compile("tcp and dst port 80 and host 10.1.2.3")   # FilterError if bad

    # skb hooks (tracepoint, raw_tracepoint, kprobe): an skb pointer value
    with b.if_(~flt.matches_skb(b, ctx.skbaddr.rvalue())):
        b.return_(0)

    # XDP and tc: the program's context
    with b.if_(~flt.matches_packet(b, ctx)):
        b.return_(XDP_PASS)

    # argparse: --filter EXPR, a bad expression is one line and exit status 2
    parser.add_argument("--filter", type=pcapfilter.argument, metavar="EXPR")

A bad expression raises :class:`FilterError` (a ``UsageError``), whose
message is one line, ``filter: column N: what is wrong``, with ``.column``
(from 1) and ``.reason``.  A compiled :class:`Filter` emits code each time
it is used; it holds no kernel state.

Semantics follow libpcap's, including the corner cases: a load past the end
of the bytes the program can see rejects the packet (even under ``not``);
``vlan`` shifts the offsets of everything after it; IPv4 ports are read only
from first fragments, past the header's own length.  For skbs (tc, skb hooks)
a VLAN tag the kernel holds beside the bytes counts for the first ``vlan``, as
in libpcap's live Linux captures (:mod:`.semantics`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import FilterError

if TYPE_CHECKING:  # pragma: no cover - the parser is imported by compile(), when a filter is given
    from . import ast, ir

#: the sk_buff fields an skb-hook filter reads up front, besides the VLAN ones (:func:`skb_fields`)
SKB_FIELDS = ("protocol", "mac_header", "network_header", "tail", "head")


def skb_fields(b) -> list[str]:
    """The sk_buff fields an skb-hook filter reads up front on this kernel (include them in a
    ``b.read`` of your own and pass the copy to :meth:`Filter.matches_skb`)."""
    from .skbvlan import vlan_fields

    return [*vlan_fields(b), "vlan_tci", *SKB_FIELDS]


@dataclass(frozen=True)
class Filter:
    """A parsed and checked filter expression."""

    text: str
    tree: ast.Node
    #: what it means over a frame's bytes (XDP)
    predicate: ir.Pred
    #: what it means over an skb, whose VLAN tag the kernel may hold beside the bytes (tc, skb hooks)
    skb_predicate: ir.Pred

    def matches(self, b, frame) -> object:
        """Emit the filter over *frame* (:mod:`.packetbytes`); the eDSL condition that it matched."""
        from .codegen import emit

        return emit(b, self.skb_predicate if frame.skb else self.predicate, frame)

    def matches_skb(self, b, skb_ptr, fields=None) -> object:
        """The condition that the packet of ``struct sk_buff *`` *skb_ptr* matches (skb hooks).

        *fields*: a ``b.read`` copy of the sk_buff that already holds :func:`skb_fields`
        (saves a probe read and stack), else they are read here.
        """
        from .packetbytes import SkbBytes

        return self.matches(b, SkbBytes(b, skb_ptr, fields))

    def matches_packet(self, b, ctx) -> object:
        """The condition that the packet of an XDP or tc program's *ctx* matches."""
        from .packetbytes import DirectBytes

        return self.matches(b, DirectBytes(b, ctx))

    def __str__(self) -> str:
        return self.text


def compile(text: str) -> Filter:
    """Parse and check *text*; raises :class:`FilterError` with the column of the error."""
    from .parser import parse
    from .semantics import meaning

    try:
        tree = parse(text)
        return Filter(text, tree, meaning(tree), meaning(tree, skb=True))
    except RecursionError:  # thousands of terms chained: each is a level here
        raise FilterError(1, "expression too long") from None


def argument(text: str) -> Filter:
    """argparse type for ``--filter EXPR``."""
    try:
        return compile(text)
    except FilterError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


__all__ = ["SKB_FIELDS", "Filter", "FilterError", "argument", "compile", "skb_fields"]
