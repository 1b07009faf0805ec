"""OVS datapath in a lab guest: a bridge forwards between namespaces and a drop flow counts.

Runs inside a VM guest (tests/vm/test_ovs.py boots one); skipped elsewhere.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pybpfasm.lab.vm import ovs

pytestmark = [
    pytest.mark.skipif(
        not Path("/sys/module/openvswitch").exists(),
        reason="needs the openvswitch kernel module: runs in the VM lab (tests/vm/test_guests.py)",
    ),
    pytest.mark.skipif(shutil.which("ovs-vswitchd") is None, reason="needs openvswitch-switch"),
]

PINGS_FORWARDED = 3
PINGS_DROPPED = 5


def received(port: ovs.NetnsPort, target: str, count: int, wait: int = 1) -> int:
    done = port.run("ping", "-c", str(count), "-i", "0.2", "-W", str(wait), target)
    found = re.search(r"(\d+) received", done.stdout)
    assert found, done.stdout + done.stderr
    return int(found.group(1))


def test_bridge_forwards_then_drop_flow_counts_every_dropped_packet() -> None:
    ovs.start()
    ovs.add_bridge("br0")
    left = ovs.add_netns_port("br0", "ns1", "10.99.0.1/24")
    right = ovs.add_netns_port("br0", "ns2", "10.99.0.2/24")

    # first contact goes through ARP and OVS upcalls, slow under TCG: wait for it, uncounted
    reached = any(received(left, right.address, 1, wait=2) for _ in range(10))
    assert reached, "ns1 never reached ns2\n" + ovs.diagnostics("br0")
    assert received(left, right.address, PINGS_FORWARDED, wait=5) == PINGS_FORWARDED

    ovs.purge_datapath_flows()
    ovs.sh("ovs-ofctl", "add-flow", "br0", "priority=100,icmp,actions=drop")
    assert ovs.flow_packets("br0", "actions=drop") == 0
    assert received(left, right.address, PINGS_DROPPED) == 0
    assert ovs.flow_packets("br0", "actions=drop") == PINGS_DROPPED
