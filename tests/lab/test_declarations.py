"""Topology and scenario files: the shipped ones load; malformed ones give one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpfasm.lab.netns import scenario, topology
from pybpfasm.lab.netns.errors import DeclarationError

MINIMAL = {"name": "t", "namespaces": {"a": {}, "b": {}},
           "veth": [{"a": {"netns": "a", "name": "x0"}, "b": {"netns": "b", "name": "x1"}}]}


def test_shipped_topologies_load():
    names = topology.available()
    assert {"drops", "bridged"} <= set(names)
    for name in names:
        topo = topology.load(name)
        assert all(ns.full.startswith(topo.prefix) for ns in topo.namespaces.values())


def test_minimal_topology_parses():
    topo = topology.parse(MINIMAL, "t.toml")
    assert [i.name for i in topo.interfaces()] == ["x0", "x1"]
    assert topo.namespaces["a"].full == "pbl-t-a"


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(colour="red"), "t.toml: unknown key 'colour'"),
    (lambda d: d.update(name="Bad-Name"), "t.toml: bad topology name 'Bad-Name'"),
    (lambda d: d["veth"][0]["a"].update(netns="c"), "t.toml.veth[0].a: unknown namespace 'c'"),
    (lambda d: d["veth"][0]["a"].update(addresses=["10.0.0.300/24"]), "bad address '10.0.0.300/24'"),
    (lambda d: d["veth"][0]["b"].update(name="x0", netns="a"), "declared twice"),
    (lambda d: d["veth"][0]["b"].update(mtu="big"), "'mtu' must be int, got 'big'"),
    (lambda d: d["veth"][0]["b"].update(name="a-very-long-interface"), "bad interface name"),
    (lambda d: d.update(route=[{"netns": "a", "dst": "default", "dev": "nope"}]), "unknown device 'nope'"),
    (lambda d: d.update(neighbour=[{"netns": "a", "dev": "x0", "address": "10.0.0.1",
                                    "lladdr": "zz"}]), "bad neighbour MAC 'zz'"),
    (lambda d: d.update(bridge=[{"netns": "a", "name": "br0", "ports": ["x1"]}]), "no port 'x1'"),
])
def test_malformed_topology_is_one_line(change, message):
    data = {**MINIMAL, "veth": [{k: dict(v) for k, v in MINIMAL["veth"][0].items()}]}
    change(data)
    with pytest.raises(DeclarationError, match=None) as err:
        topology.parse(data, "t.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_topology_lists_known():
    known = ", ".join(sorted(p.stem for p in (Path(topology.__file__).parents[1] / "topologies").glob("*.toml")))
    with pytest.raises(DeclarationError, match=rf"no topology 'nope' \(known: {known}\)"):
        topology.load("nope")


def test_scenarios_cover_the_issue():
    names = [s.name for s in scenario.load("drops", release="6.18.0").scenarios]
    assert names == [
        "udp4-closed-port", "tcp4-closed-port", "udp4-nft-drop", "icmp4-echo-nft-drop",
        "ip4-bad-checksum", "ip4-truncated", "vlan-no-device", "ip4-duplicate-fragment",
        "ip4-fragment-timeout", "udp6-closed-port", "tcp6-closed-port", "udp6-nft-drop",
    ]


@pytest.mark.parametrize(("release", "reasons"), [
    ("6.18.44", ["DUP_FRAG", "NO_SOCKET"]),
    ("6.12.117+deb12-amd64", ["DUP_FRAG", "NO_SOCKET"]),
    ("6.1.0-56-amd64", ["NOT_SPECIFIED", "NO_SOCKET"]),
    ("5.15.0", [None, None]),
])
def test_reason_follows_the_kernel_series(release, reasons):
    scenarios = scenario.load("drops", release=release).select(["ip4-duplicate-fragment"])
    assert [e.fields["reason"] for e in scenarios.scenarios[0].expect] == reasons


def test_bad_scenario_selection():
    with pytest.raises(DeclarationError, match="no scenario 'nope'"):
        scenario.load("drops").select(["nope"])
