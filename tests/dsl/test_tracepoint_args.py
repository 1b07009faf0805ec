"""tp_btf arguments by their names in the kernel's BTF (``__bpf_trace_<event>``): a program
that reads ``ctx.skb`` and ``ctx.reason`` counts exactly the drops the test causes."""

from __future__ import annotations

import os
import socket
import time

import pytest

from pybpfasm.btf import BTF
from pybpfasm.dsl import Builder, Collection, HashMap, tp_btf, u32, u64
from pybpfasm.dsl.context import tracepoint_args
from pybpfasm.link.netns import entered

from .test_tracepoint_count import PORT, SENT, netns  # noqa: F401 - netns is a fixture

reasons = HashMap(u32, u64, 16, name="tpbtf_reasons")


def test_argument_names_come_from_btf():
    types, names = tracepoint_args(Builder("tp_btf"), "kfree_skb")
    assert names[:3] == ["skb", "location", "reason"]
    assert [t.name for t in types[:1]] == ["struct sk_buff *"]
    assert tracepoint_args(Builder("tp_btf"), "no_such_event") == ([], [])


@tp_btf("kfree_skb")
def by_name(b, ctx, opts: tuple[int, tuple[int, ...]]) -> None:
    netns_inum, wanted = opts
    with b.if_(ctx.skb.dev.nd_net.net.ns.inum != netns_inum):
        b.return_(0)
    with b.if_(ctx.reason.in_(*wanted)):
        reasons.increment(b, ctx.reason)


@pytest.mark.skipif(os.geteuid() != 0, reason="attaching programs needs root")
def test_named_arguments_count_the_drops(netns: str) -> None:  # noqa: F811
    inum = os.stat(f"/run/netns/{netns}").st_ino
    enum = BTF.kernel().enum("skb_drop_reason")
    no_socket = enum["SKB_DROP_REASON_NO_SOCKET"]
    with Collection() as coll:
        coll.load(by_name, (inum, (enum["SKB_DROP_REASON_NOT_SPECIFIED"], no_socket)))
        coll.attach(by_name)
        with entered(netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            for i in range(SENT):
                sock.sendto(bytes([i]), ("127.0.0.1", PORT))
        counted = settled(coll.map(reasons))
    assert counted == {no_socket: SENT}


def settled(counts, timeout: float = 5.0) -> dict[int, int]:
    """The map once SENT drops are in (softirq may run late), after a short wait for extras."""
    deadline = time.monotonic() + timeout
    while sum(counts.values()) < SENT and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    return dict(counts.items())
