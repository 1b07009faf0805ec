"""The skb filters every skb tracer shares: a pcap-filter expression (``--filter``, compiled
into the program by :mod:`pybpfasm.pcapfilter`) and pwru's ``--filter-netns``,
``--filter-ifname``, ``--filter-mark``, parsed into an :class:`~.skbhooks.SkbFilter`."""

from __future__ import annotations

import argparse
import os

from pybpfasm import pcapfilter
from pybpfasm.errors import UsageError

from . import options as types
from .packet import PacketFilter
from .skbhooks import SkbFilter

mark = types.integer(0, 2**32 - 1, "mark", hex_ok=True)


def netns(text: str) -> int:
    """argparse type: ``inode:N`` or a namespace file (``/proc/PID/ns/net``, ``/run/netns/X``)."""
    if text.startswith("inode:"):
        return types.netns_inode(text[len("inode:"):])
    try:
        return os.stat(text).st_ino
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err.strerror} (give inode:N or a namespace file)") from None


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", type=pcapfilter.argument, metavar="EXPR",
                        help="only packets this pcap-filter expression matches, e.g. 'tcp and dst port 80'")
    parser.add_argument("--filter-netns", type=netns, metavar="NS",
                        help="only skbs in this network namespace: inode:N or a file like /proc/PID/ns/net")
    parser.add_argument("--filter-ifname", type=types.ifname, metavar="NAME",
                        help="only skbs on this interface")
    parser.add_argument("--filter-mark", type=mark, metavar="MARK", help="only skbs with this mark")


def filter_from(args: argparse.Namespace, pkt: PacketFilter, *, netns: int | None = None,
                pid: int | None = None) -> SkbFilter:
    """The skb filter of these arguments; *netns* is a tool's own namespace option, which
    must agree with ``--filter-netns`` when both are given."""
    if netns is not None and args.filter_netns is not None and netns != args.filter_netns:
        raise UsageError(f"two different network namespaces: {netns} and --filter-netns {args.filter_netns}")
    return SkbFilter(packet=pkt, netns=args.filter_netns if netns is None else netns,
                     ifname=args.filter_ifname, mark=args.filter_mark, pid=pid, expr=args.filter)
