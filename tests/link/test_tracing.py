"""Tracepoint, raw_tp and tp_btf programs count exactly the drops the test causes, then detach."""

from __future__ import annotations

import errno

import pytest

from pybpfasm.errors import UsageError
from pybpfasm.kernel import tracepoint_id
from pybpfasm.link import attach_raw_tracepoint, attach_tp_btf, attach_tracepoint
from pybpfasm.link.perf_event import PERF_TYPE_TRACEPOINT, attach_perf_event, open_event
from pybpfasm.sys import SyscallError

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


def _no_perf_event_links(*_args, **_kwargs):
    """link_create as a kernel before 5.15 answers it for perf events."""
    raise SyscallError("link_create", errno.EINVAL)


def test_auto_attach_falls_back_to_ioctl_where_perf_event_links_are_refused(make_netns, monkeypatch):
    from pybpfasm.link import perf_event

    ns = make_netns()
    monkeypatch.setattr(perf_event, "link_create", _no_perf_event_links)
    with counter() as count, drop_counter("tracepoint", ns.inum, count) as prog:
        with attach_tracepoint(prog, "skb", "kfree_skb") as link:
            assert link.link is None and not links_of({int(prog.info().id)})
            send_udp(ns.name, "127.0.0.1", CLOSED_PORT, 5)
            assert settle(lambda: count[0], 5) == 5
        with pytest.raises(SyscallError, match="Invalid argument"):
            attach_tracepoint(prog, "skb", "kfree_skb", via="link")
        with pytest.raises(UsageError, match="cookies need perf-event links"):
            attach_perf_event(prog.fileno(), open_event(PERF_TYPE_TRACEPOINT,
                                                        tracepoint_id("skb", "kfree_skb")),
                              cookie=7)


def test_auto_attach_passes_other_link_errors_on(monkeypatch):
    from pybpfasm.link import perf_event

    def refused(*_args, **_kwargs):
        raise SyscallError("link_create", errno.EPERM)

    monkeypatch.setattr(perf_event, "link_create", refused)
    with counter() as count, drop_counter("tracepoint", 1, count) as prog, \
            pytest.raises(SyscallError, match="Operation not permitted"):
        attach_tracepoint(prog, "skb", "kfree_skb")
