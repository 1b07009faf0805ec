"""Bad input: one clear error, and nothing left open or attached."""

from __future__ import annotations

import os

import pytest

from pybpfasm.errors import BPFError, UsageError
from pybpfasm.link import attach_raw_tracepoint, attach_tc, attach_tracepoint, attach_xdp
from pybpfasm.link.netns import entered
from pybpfasm.sys import ProgType, SyscallError

from .kernel_state import ip_link, links_of
from .programs import counter, drop_counter, udp_port_counter


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def xdp_prog():
    with counter() as count, udp_port_counter(ProgType.XDP, 1, count, 2, "pbt_err_xdp") as prog:
        yield prog


def test_unknown_tracepoint(make_netns):
    with counter() as count, drop_counter("tracepoint", 1, count) as prog:
        before = _open_fds()
        with pytest.raises(BPFError, match="no tracepoint skb:no_such_event") as err:
            attach_tracepoint(prog, "skb", "no_such_event")
        assert "\n" not in str(err.value)
        assert _open_fds() == before
    with counter() as count, drop_counter("raw_tp", 1, count) as prog:
        with pytest.raises(SyscallError, match="raw tracepoint 'no_such_event'"):
            attach_raw_tracepoint(prog, "no_such_event")
        assert _open_fds() == before


def test_xdp_bad_input(veth, xdp_prog):
    home = os.readlink("/proc/thread-self/ns/net")
    with pytest.raises(UsageError, match="no network interface 'pbt-none'"):
        attach_xdp(xdp_prog, "pbt-none", netns=veth.receiver_ns)
    with pytest.raises(UsageError, match="unknown XDP mode"):
        attach_xdp(xdp_prog, veth.receiver, mode="turbo", netns=veth.receiver_ns)
    with pytest.raises(UsageError, match="cannot enter network namespace"):
        attach_xdp(xdp_prog, veth.receiver, netns="pbt-no-such-netns")
    # the failed calls left this thread in its own namespace
    assert os.readlink("/proc/thread-self/ns/net") == home


@pytest.mark.parametrize("via", ["link", "netlink"])
def test_second_xdp_program_is_refused_and_the_first_stays(veth, xdp_prog, via):
    with attach_xdp(xdp_prog, veth.receiver, mode="skb", netns=veth.receiver_ns, via=via):
        before = _open_fds()
        with pytest.raises(SyscallError) as err:
            attach_xdp(xdp_prog, veth.receiver, mode="skb", netns=veth.receiver_ns, via=via)
        assert "\n" not in str(err.value)
        assert _open_fds() == before
        assert "xdpgeneric" in ip_link(veth.receiver_ns, veth.receiver)
    assert "xdp" not in ip_link(veth.receiver_ns, veth.receiver)


def test_tc_bad_input(veth):
    with counter() as count, udp_port_counter(ProgType.SCHED_CLS, 1, count, 0, "pbt_err_tc") as prog:
        with pytest.raises(UsageError, match="unknown tc direction"):
            attach_tc(prog, veth.receiver, "sideways", netns=veth.receiver_ns)
        with pytest.raises(UsageError, match="unknown attach method"):
            attach_tc(prog, veth.receiver, netns=veth.receiver_ns, via="ioctl")
        assert not links_of({int(prog.info().id)})


def test_entered_restores_the_namespace_after_an_exception(make_netns):
    ns = make_netns()
    home = os.readlink("/proc/thread-self/ns/net")
    with pytest.raises(RuntimeError), entered(ns.name):
        assert os.readlink("/proc/thread-self/ns/net") != home
        raise RuntimeError
    assert os.readlink("/proc/thread-self/ns/net") == home
