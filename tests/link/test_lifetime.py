"""cgroup programs, and what a killed process leaves behind: nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pybpfasm.link import attach_cgroup
from pybpfasm.sys import AttachType, ProgType

from .conftest import run_in
from .kernel_state import attached_to, ip_link, links_of, programs_named, settle, tc_state
from .programs import counter, every_packet_counter

DATAGRAMS = 25
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("via", ["link", "attach"])
def test_cgroup_skb_counts_the_cgroups_packets(cgroup, make_netns, via):
    ns = make_netns()
    send = f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n" \
           f"for _ in range({DATAGRAMS}): s.sendto(b'x', ('127.0.0.1', 9))"
    with counter() as count, every_packet_counter(
            ProgType.CGROUP_SKB, count, 1, "pbt_cgroup_egress",
            expected_attach_type=AttachType.CGROUP_INET_EGRESS) as prog:
        prog_id = int(prog.info().id)
        with attach_cgroup(prog, cgroup, AttachType.CGROUP_INET_EGRESS, via=via):
            assert bool(links_of({prog_id})) == (via == "link")
            assert prog_id in attached_to(cgroup)
            run_in(cgroup, ns.name, send)
            assert count[0] == DATAGRAMS
        assert prog_id not in attached_to(cgroup)
        run_in(cgroup, ns.name, send)
        assert count[0] == DATAGRAMS
        assert not links_of({prog_id})


#: a child that attaches one program of each link kind, says "ready" and waits to be killed
CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.link.programs import counter, drop_counter, tc_options, udp_port_counter
    from pybpfasm.link import *
    from pybpfasm.sys import ProgType
    count = counter()
    keep = [
        attach_tracepoint(drop_counter("tracepoint", 1, count), "skb", "kfree_skb"),
        attach_raw_tracepoint(drop_counter("raw_tp", 1, count), "kfree_skb"),
        attach_tp_btf(drop_counter("tp_btf", 1, count)),
        attach_xdp(udp_port_counter(ProgType.XDP, 1, count, 2, "pbt_kill_xdp"),
                   {iface!r}, mode="skb", netns={netns!r}),
        attach_tc(udp_port_counter(ProgType.SCHED_CLS, 1, count, 0, "pbt_kill_tc",
                                   **tc_options("ingress")),
                  {iface!r}, netns={netns!r}),
    ]
    print("ready", flush=True)
    time.sleep(60)
""")


def test_sigkill_leaves_nothing_attached(veth):
    code = CHILD.format(root=str(REPO), iface=veth.receiver, netns=veth.receiver_ns)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        progs = programs_named("pbt_drop_") + programs_named("pbt_kill_")
        assert len(progs) == 5
        assert len(links_of({p["id"] for p in progs})) == 5
        assert "xdpgeneric" in ip_link(veth.receiver_ns, veth.receiver)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert settle(lambda: programs_named("pbt_drop_") + programs_named("pbt_kill_"), []) == []
    assert "xdp" not in ip_link(veth.receiver_ns, veth.receiver)
    assert tc_state(veth.receiver_ns, veth.receiver) == ""
