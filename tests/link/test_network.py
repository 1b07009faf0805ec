"""XDP and tc programs on a veth in a test namespace see exactly the packets sent, then leave nothing."""

from __future__ import annotations

import socket

import pytest

from pybpfasm.link import attach_socket_filter, attach_tc, attach_xdp, probes
from pybpfasm.link.netns import entered
from pybpfasm.sys import ProgType

from .conftest import send_udp
from .kernel_state import ip_link, links_of, programs_named, settle, tc_state
from .programs import counter, every_packet_counter, tc_options, udp_port_counter

PACKETS = 64
PORT = 7777
XDP_PASS, TC_ACT_OK = 2, 0


@pytest.mark.parametrize("via", ["link", "netlink"])
@pytest.mark.parametrize("mode", ["skb", "native"])
def test_xdp_sees_exactly_the_packets_sent(veth, mode, via):
    name = f"pbt_xdp_{mode}"
    with counter() as count, udp_port_counter(ProgType.XDP, PORT, count, XDP_PASS, name) as prog:
        prog_id = int(prog.info().id)
        with attach_xdp(prog, veth.receiver, mode=mode, netns=veth.receiver_ns, via=via) as link:
            assert ("xdpgeneric" if mode == "skb" else "xdp") in ip_link(veth.receiver_ns, veth.receiver)
            assert bool(links_of({prog_id})) == (via == "link")
            send_udp(veth.sender_ns, veth.receiver_addr, PORT, PACKETS)
            send_udp(veth.sender_ns, veth.receiver_addr, PORT + 1, 5)  # another port: not counted
            assert settle(lambda: count[0], PACKETS) == PACKETS
        assert link.closed
        assert "xdp" not in ip_link(veth.receiver_ns, veth.receiver)
        assert not links_of({prog_id})
    assert settle(lambda: programs_named(name), []) == []


@pytest.mark.parametrize("via", ["tcx", "netlink"])
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_sees_exactly_the_packets_sent(veth, direction, via):
    # ingress on the receiver, egress on the sender: the same packets either way
    netns, iface = ((veth.receiver_ns, veth.receiver) if direction == "ingress"
                    else (veth.sender_ns, veth.sender))
    if via == "tcx" and not probes.tcx_link():
        pytest.skip("tcx: not in this kernel (6.6+)")
    name = f"pbt_tc_{direction[:3]}_{via}"
    with counter() as count, udp_port_counter(ProgType.SCHED_CLS, PORT, count, TC_ACT_OK, name,
                                              **tc_options(direction)) as prog:
        prog_id = int(prog.info().id)
        with attach_tc(prog, iface, direction, netns=netns, via=via) as link:
            assert bool(links_of({prog_id})) == (via == "tcx")
            assert ("clsact" in tc_state(netns, iface)) == (via == "netlink")
            send_udp(veth.sender_ns, veth.receiver_addr, PORT, PACKETS)
            assert settle(lambda: count[0], PACKETS) == PACKETS
        assert link.closed
        assert tc_state(netns, iface) == ""
        assert not links_of({prog_id})
    assert settle(lambda: programs_named(name), []) == []


def test_tc_netlink_keeps_a_clsact_it_did_not_create(veth):
    import subprocess

    subprocess.run(["tc", "-n", veth.receiver_ns, "qdisc", "add", "dev", veth.receiver, "clsact"],
                   check=True)
    with counter() as count, udp_port_counter(ProgType.SCHED_CLS, PORT, count, TC_ACT_OK,
                                              "pbt_tc_shared") as prog:
        with attach_tc(prog, veth.receiver, netns=veth.receiver_ns, via="netlink"):
            assert "bpf" in tc_state(veth.receiver_ns, veth.receiver)
        state = tc_state(veth.receiver_ns, veth.receiver)
    assert "clsact" in state and "bpf" not in state


def test_socket_filter_sees_what_the_socket_receives(make_netns):
    ns = make_netns()
    with entered(ns.name):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, counter() as count, every_packet_counter(ProgType.SOCKET_FILTER, count, 0xFFFF,
                                                      "pbt_sockfilter") as prog:
        rx.bind(("127.0.0.1", PORT))
        rx.settimeout(5)
        with attach_socket_filter(prog, rx):
            send_udp(ns.name, "127.0.0.1", PORT, 10)
            assert len([rx.recv(16) for _ in range(10)]) == 10  # received: filtered already
        send_udp(ns.name, "127.0.0.1", PORT, 3)  # after close(): not seen by the program
        assert len([rx.recv(16) for _ in range(3)]) == 3
        assert count[0] == 10
