"""BPF netfilter links: a program at a hook of one namespace sees exactly that namespace's
packets at that hook, its verdict counts, and closing the link removes the hook."""

from __future__ import annotations

import errno

import pytest

from pybpfasm import features
from pybpfasm.errors import UsageError
from pybpfasm.link import attach_netfilter
from pybpfasm.link.netfilter import NF_ACCEPT, NF_DROP, hooks, priorities
from pybpfasm.sys import AttachType, LinkType, ProgType, SyscallError

from .conftest import send_udp
from .kernel_state import links_of, programs_named, settle
from .programs import counter, every_packet_counter

PACKETS = 20
PORT = 7788

pytestmark = pytest.mark.skipif(not features.link_type(LinkType.NETFILTER),
                                reason="netfilter links: not in this kernel (6.4+)")


def _counter_prog(count, verdict: int, name: str):
    return every_packet_counter(ProgType.NETFILTER, count, verdict, name,
                                expected_attach_type=AttachType.NETFILTER)


def test_local_in_sees_exactly_the_datagrams_sent_in_its_namespace(veth):
    with counter() as count, _counter_prog(count, NF_ACCEPT, "pbt_nf_in") as prog:
        prog_id = int(prog.info().id)
        with attach_netfilter(prog, "ipv4", "local_in", -100, netns=veth.receiver_ns) as link:
            # bpftool 7.1 predates the type's name and prints its number
            assert [lk["type"] for lk in links_of({prog_id})] in (["netfilter"], [int(LinkType.NETFILTER)])
            send_udp(veth.sender_ns, veth.receiver_addr, PORT, PACKETS)
            # the sender's namespace has no hook of ours: its outgoing packets are not counted
            assert settle(lambda: count[0], PACKETS) == PACKETS
        assert link.closed
        assert settle(lambda: links_of({prog_id}), []) == []
        send_udp(veth.sender_ns, veth.receiver_addr, PORT, 3)  # detached: not counted
        assert settle(lambda: count[0], PACKETS + 3, timeout=0.5) == PACKETS
    assert settle(lambda: programs_named("pbt_nf_in"), []) == []


def test_an_nf_drop_verdict_drops(veth):
    """The same packets through a dropping program: none reach LOCAL_IN's later functions
    (the receiver's Ip InDelivers stays put), and every one was seen."""
    def delivered() -> int:
        import subprocess

        out = subprocess.run(["ip", "netns", "exec", veth.receiver_ns, "cat", "/proc/net/snmp"],
                             check=True, capture_output=True, text=True).stdout.splitlines()
        names, values = out[0].split(), out[1].split()
        return int(values[names.index("InDelivers")])

    with counter() as count, _counter_prog(count, NF_DROP, "pbt_nf_drop") as prog:
        before = delivered()
        with attach_netfilter(prog, "ipv4", "local_in", -100, netns=veth.receiver_ns):
            send_udp(veth.sender_ns, veth.receiver_addr, PORT, 5)
            assert settle(lambda: count[0], 5) == 5
        assert delivered() == before


def test_one_priority_per_hook_and_the_extremes_are_refused(veth):
    with counter() as count, _counter_prog(count, NF_ACCEPT, "pbt_nf_prio") as prog:
        with attach_netfilter(prog, "ipv4", "pre_routing", -100, netns=veth.receiver_ns):
            with pytest.raises(SyscallError) as taken:
                attach_netfilter(prog, "ipv4", "pre_routing", -100, netns=veth.receiver_ns)
            assert taken.value.errno == errno.EBUSY
        with pytest.raises(SyscallError) as first:
            attach_netfilter(prog, "ipv6", "pre_routing", priorities("ipv6")["first"],
                             netns=veth.receiver_ns)
        assert first.value.errno == errno.ERANGE


def test_names_come_from_the_kernel_and_bad_ones_are_one_line_errors(veth):
    assert hooks()["pre_routing"] == 0 and hooks()["local_in"] == 1
    assert priorities("ipv4")["conntrack_defrag"] == -400
    with counter() as count, _counter_prog(count, NF_ACCEPT, "pbt_nf_bad") as prog:
        with pytest.raises(UsageError, match="unknown netfilter hook 'input'"):
            attach_netfilter(prog, "ipv4", "input", 0)
        with pytest.raises(UsageError, match="unknown netfilter family"):
            attach_netfilter(prog, "arp", "local_in", 0)


def test_a_range_of_priorities_takes_the_first_free_one(veth):
    with counter() as count, _counter_prog(count, NF_ACCEPT, "pbt_nf_range") as prog, \
            attach_netfilter(prog, "ipv4", "local_in", -100, netns=veth.receiver_ns), \
            attach_netfilter(prog, "ipv4", "local_in", range(-100, -98), netns=veth.receiver_ns):
        with pytest.raises(SyscallError) as full:
            attach_netfilter(prog, "ipv4", "local_in", range(-100, -98), netns=veth.receiver_ns)
        assert full.value.errno == errno.EBUSY
        send_udp(veth.sender_ns, veth.receiver_addr, PORT, 4)
        assert settle(lambda: count[0], 8) == 8  # both links ran the program on each
