"""The drops topology: built as declared, and silent until a scenario sends."""

from __future__ import annotations

import subprocess
import time

from pybpfasm.lab.netns import runner
from pybpfasm.link.netns import entered

from .conftest import ip_json, sysctl
from .oracle import ReasonCounter


def test_drops_topology_is_built_as_declared(drops_lab):
    topo = drops_lab.topology
    for iface in topo.interfaces():
        netns = topo.namespaces[iface.netns].full
        (link,) = ip_json(netns, "link", "show", iface.name)
        assert (link["address"], link["mtu"], link["operstate"]) == (iface.mac, iface.mtu, "UP")
        assert ("NOARP" in link["flags"]) == (not iface.arp)
        (addr,) = ip_json(netns, "addr", "show", iface.name)
        assert {f"{a['local']}/{a['prefixlen']}" for a in addr["addr_info"]} == set(iface.addresses)
    for neigh in topo.neighbours:
        entries = ip_json(topo.namespaces[neigh.netns].full, "neigh", "show", neigh.address)
        assert [(e["lladdr"], e["state"]) for e in entries] == [(neigh.lladdr, ["PERMANENT"])]
    for ns in topo.namespaces.values():
        for key, value in ns.sysctls.items():
            assert sysctl(ns.full, key) == value
    with entered(topo.namespaces["server"].full):
        ruleset = subprocess.run(["nft", "list", "ruleset"], check=True, capture_output=True, text=True).stdout
    assert "udp dport 7002 drop" in ruleset


def test_drops_topology_is_silent_on_its_own(drops_lab):
    """No ARP, ND, DAD or MLD: nothing drops in the lab unless a scenario sends."""
    with ReasonCounter(runner.lab_inodes(drops_lab).values()) as oracle:
        time.sleep(2.0)
        assert oracle.events() == []
