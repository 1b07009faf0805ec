"""Tracepoint, raw_tp and tp_btf programs count exactly the drops the test causes, then detach."""

from __future__ import annotations

import pytest

from pybpfasm.link import attach_raw_tracepoint, attach_tp_btf, attach_tracepoint

from .conftest import send_udp
from .kernel_state import links_of, programs_named, settle
from .programs import counter, drop_counter

#: UDP datagrams sent to a port nothing listens on: one kfree_skb(NO_SOCKET) each
DROPS = 100
CLOSED_PORT = 9

ATTACH = {
    "tracepoint": lambda prog: attach_tracepoint(prog, "skb", "kfree_skb"),
    "tracepoint-ioctl": lambda prog: attach_tracepoint(prog, "skb", "kfree_skb", via="ioctl"),
    "raw_tp": lambda prog: attach_raw_tracepoint(prog, "kfree_skb"),
    "tp_btf": attach_tp_btf,
}


@pytest.mark.parametrize("kind", list(ATTACH))
def test_counts_exactly_the_drops_it_causes(kind, make_netns):
    ns = make_netns()
    program = kind.split("-")[0]
    with counter() as count, drop_counter(program, ns.inum, count) as prog:
        prog_id = int(prog.info().id)
        with ATTACH[kind](prog) as link:
            assert bool(links_of({prog_id})) == (not kind.endswith("ioctl"))
            send_udp(ns.name, "127.0.0.1", CLOSED_PORT, DROPS)
            assert settle(lambda: count[0], DROPS) == DROPS
        assert link.closed
        assert not links_of({prog_id})
        send_udp(ns.name, "127.0.0.1", CLOSED_PORT, 10)  # detached: no longer counted
        assert settle(lambda: count[0], DROPS + 10, timeout=0.3) == DROPS
    assert settle(lambda: programs_named(f"pbt_drop_{program}"), []) == []


def test_other_namespaces_drops_are_not_counted(make_netns):
    mine, other = make_netns(), make_netns()
    with counter() as count, drop_counter("tp_btf", mine.inum, count) as prog, attach_tp_btf(prog):
        send_udp(other.name, "127.0.0.1", CLOSED_PORT, 20)
        send_udp(mine.name, "127.0.0.1", CLOSED_PORT, 7)
        assert settle(lambda: count[0], 7) == 7
