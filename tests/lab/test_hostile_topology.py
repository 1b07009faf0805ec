"""Hostile topology files: a sysctl key is a name under /proc/sys, never a host path; names
are matched whole (a trailing newline is refused); any file gives a topology or one error line.

``PYBPFASM_FUZZ_LONG=1`` runs 10,000 generated files per fuzz test instead of a few hundred.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfasm.lab.netns import build, sysctl, topology
from pybpfasm.lab.netns.errors import DeclarationError, LabError
from pybpfasm.lab.netns.topology import Namespace, Topology

from .conftest import sysctl as read_sysctl

LONG = os.environ.get("PYBPFASM_FUZZ_LONG") == "1"


def fuzz(examples: int):
    return settings(max_examples=10_000 if LONG else examples, deadline=None, derandomize=not LONG,
                    suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize(("name", "parts"), [
    ("net.ipv4.ip_forward", ("net", "ipv4", "ip_forward")),
    ("net/ipv4/ip_forward", ("net", "ipv4", "ip_forward")),
    ("net.ipv4.conf.eth0/100.forwarding", ("net", "ipv4", "conf", "eth0.100", "forwarding")),
    ("net/ipv4/conf/eth0.100/forwarding", ("net", "ipv4", "conf", "eth0.100", "forwarding")),
])
def test_sysctl_names_as_sysctl8_reads_them(name, parts):
    assert sysctl.components(name) == parts


@pytest.mark.parametrize("name", [
    "/tmp/x/pwned", "../../etc/passwd", "net/../../etc/passwd", "net..ipv4", "net.//.x", "net.ipv4.",
    "", ".", "net.ipv4.ip_forward\n", "net.ipv4.ip forward", "net/ipv4//ip_forward", "net.ipv4.ip_forward\0",
])
def test_sysctl_names_that_are_paths_are_refused(name):
    with pytest.raises(DeclarationError, match=r"^bad sysctl name "):
        sysctl.components(name)


def test_a_sysctl_key_cannot_write_a_host_file(tmp_path):
    target = tmp_path / "pwned"
    data = {"name": "t", "namespaces": {"a": {"sysctls": {str(target): "1"}}}}
    with pytest.raises(DeclarationError, match=r"^t.toml.namespaces.a.sysctls: bad sysctl name"):
        topology.parse(data, "t.toml")
    with pytest.raises(DeclarationError):  # and the writer checks again, whoever built the topology
        sysctl.write(str(target), "1")
    with pytest.raises(DeclarationError):
        sysctl.write("../../" + str(target), "1")
    assert not target.exists()


def test_written_through_proc_sys_by_name(privileged):
    """A built topology's sysctls land in its namespace, dotted or slashed."""
    topo = Topology("sysctls", "", {"a": Namespace("a", "pbl-sysctls-a", {
        "net/ipv4/ip_forward": "1", "net.ipv4.conf.all.forwarding": "1", "net.ipv4.ipfrag_time": "7"})})
    with build.built(topo):
        assert read_sysctl("pbl-sysctls-a", "net.ipv4.ip_forward") == "1"
        assert read_sysctl("pbl-sysctls-a", "net.ipv4.ipfrag_time") == "7"


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(name="agrt\n"), "bad topology name 'agrt\\n'"),
    (lambda d: d["namespaces"].update({"a\n": {}}), "namespace names are up to 32"),
    (lambda d: d["namespaces"]["a"].update(sysctls={"net.ipv4.ip_forward": "1\n"}), "bad sysctl value '1\\n'"),
    (lambda d: d["namespaces"]["a"].update(sysctls={"net.ipv4.ip_forward": True}), "bad sysctl value True"),
    (lambda d: d.update(veth=[{"a": {"netns": "a", "name": "x0\n"}, "b": {"netns": "a", "name": "x1"}}]),
     "bad interface name 'x0\\n'"),
    (lambda d: d.update(veth=[{"a": {"netns": "a", "name": "x0", "mac": "02:00:00:00:00:01\n"},
                               "b": {"netns": "a", "name": "x1"}}]), "bad MAC address"),
])
def test_names_are_matched_whole(change, message):
    data = {"name": "t", "namespaces": {"a": {}}}
    change(data)
    with pytest.raises(DeclarationError) as caught:
        topology.parse(data, "t.toml")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_down_refuses_a_name_with_a_newline():
    with pytest.raises(DeclarationError, match="bad topology name"):
        build.down("drops\n")


# --- fuzz ------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["a", "b", "x0", "x1", "br0", "default", "10.0.0.1/24", "fd00::1/64", "10.0.0.1", "02:00:00:00:00:01",
     "net.ipv4.ip_forward", "/tmp/x", "../x", "a\n", "1"])
SCALAR = TEXT | st.integers(-(2**70), 2**70) | st.booleans() | st.floats(allow_nan=True)
KEYS = st.sampled_from(["name", "description", "namespaces", "veth", "tap", "bridge", "route", "neighbour",
                        "netns", "addresses", "mtu", "mac", "arp", "ports", "dst", "via", "dev", "address",
                        "lladdr", "sysctls", "nft", "a", "b"]) | TEXT
VALUES = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                      max_leaves=30)


def one_error_or_a_topology(run) -> None:
    try:
        run()
    except (DeclarationError, LabError) as err:
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message


@fuzz(400)
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_any_document_gives_a_topology_or_one_line(doc):
    one_error_or_a_topology(lambda: topology.parse(doc, "t.toml"))


@fuzz(200)
@given(st.fixed_dictionaries({"name": st.just("t"), "namespaces": st.dictionaries(
    TEXT, st.fixed_dictionaries({}, optional={"sysctls": st.dictionaries(TEXT, SCALAR, max_size=3),
                                              "nft": TEXT}), max_size=3)}, optional={
    "veth": st.lists(st.fixed_dictionaries({"a": st.dictionaries(KEYS, VALUES, max_size=6),
                                            "b": st.dictionaries(KEYS, VALUES, max_size=6)}), max_size=2)}))
def test_near_valid_documents_give_a_topology_or_one_line(doc):
    """Shaped like a topology, so the checks past the first key are reached."""
    one_error_or_a_topology(lambda: topology.parse(doc, "t.toml"))


@fuzz(200)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | st.integers(1, 50_000).map(lambda n: b"a = " + b"[" * n + b"]" * n))
def test_any_file_gives_a_topology_or_one_line(tmp_path_factory, raw):
    path: Path = tmp_path_factory.mktemp("topo") / "t.toml"
    path.write_bytes(raw)
    one_error_or_a_topology(lambda: topology.load(str(path)))
