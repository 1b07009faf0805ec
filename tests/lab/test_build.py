"""Topologies come up as declared, stay silent, and go away completely on every exit path."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from pybpfasm.lab.netns import build, topology
from pybpfasm.lab.netns.errors import LabError
from pybpfasm.link.netns import entered

from .conftest import host_links, ip_json, sysctl

pytestmark = pytest.mark.usefixtures("privileged")


def test_bridged_topology_forwards_and_leaves_nothing():
    before = host_links()
    topo = topology.load("bridged")
    with build.built(topo):
        sw = topo.namespaces["sw"].full
        masters = {link["ifname"]: link.get("master") for link in ip_json(sw, "link", "show")}
        assert [p for p, m in masters.items() if m == "br0"] == ["p1", "p2", "tap0"]
        (tap,) = ip_json(sw, "link", "show", "tap0")
        assert (tap["address"], tap["mtu"]) == ("02:00:0a:4e:00:fe", 1400)
        routes = ip_json(topo.namespaces["h1"].full, "route", "show", "10.78.9.0/24")
        assert [(r["dst"], r["gateway"]) for r in routes] == [("10.78.9.0/24", "10.78.0.254")]
        assert sysctl(sw, "net.ipv4.ip_forward") == "1"
        assert udp_roundtrip(topo.namespaces["h1"].full, topo.namespaces["h2"].full, "10.78.0.2")
        assert udp_roundtrip(topo.namespaces["h1"].full, topo.namespaces["h2"].full, "fd78::2")
    assert build.namespaces_up(topo.prefix) == []
    assert host_links() == before


def udp_roundtrip(client_ns: str, server_ns: str, address: str) -> bool:
    """A datagram from ``client_ns`` reaches a socket bound in ``server_ns``."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with entered(server_ns):
        server = socket.socket(family, socket.SOCK_DGRAM)
    with entered(client_ns):
        client = socket.socket(family, socket.SOCK_DGRAM)
    with server, client:
        server.bind((address, 7777))
        server.settimeout(3)
        client.sendto(b"hello", (address, 7777))
        return server.recv(16) == b"hello"


def test_up_twice_is_refused_and_down_is_idempotent(privileged):
    topo = topology.load("bridged")
    build.up(topo)
    try:
        with pytest.raises(LabError, match="already up"):
            build.up(topo)
    finally:
        assert build.down(topo.name) == ["pbl-bridged-h1", "pbl-bridged-h2", "pbl-bridged-sw"]
    assert build.down(topo.name) == []


def test_failed_build_removes_what_it_made():
    data = {"name": "broken", "namespaces": {"a": {"nft": "table inet x { chain c { nonsense } }"}}}
    topo = topology.parse(data, "broken.toml")
    with pytest.raises(LabError, match="'nft -f -' failed"):
        build.up(topo)
    assert build.namespaces_up(topo.prefix) == []


def run_lab(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pybpfasm.cli", "lab", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_sigkilled_owner_leaves_namespaces_that_down_removes():
    code = ("import time; from pybpfasm.lab.netns import build, topology\n"
            "with build.built(topology.load('bridged')):\n"
            "    print('up', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "up\n"
    child.kill()
    child.wait()
    assert build.namespaces_up("pbl-bridged-") == ["pbl-bridged-h1", "pbl-bridged-h2", "pbl-bridged-sw"]
    done = run_lab("down", "bridged")
    assert done.communicate()[0] == "removed pbl-bridged-h1, pbl-bridged-h2, pbl-bridged-sw\n"
    assert build.namespaces_up("pbl-bridged-") == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_demo_removes_everything(signum):
    from pybpfasm.lab.netns.monitor import available

    if not available("dropmon"):
        pytest.skip("no 'pybpfasm dropmon' in this tree")
    before = host_links()
    demo = run_lab("demo", "ip4-fragment-timeout", "udp4-closed-port")
    deadline = time.monotonic() + 30
    while "pbl-drops-server" not in build.namespaces_up("pbl-drops-") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # the monitor is starting or the fragment is waiting to time out
    monitors = children(demo.pid)
    assert monitors, "the demo has not started the drop monitor yet"
    demo.send_signal(signum)
    _, err = demo.communicate(timeout=30)
    assert demo.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert build.namespaces_up("pbl-drops-") == []
    assert host_links() == before
    assert [pid for pid in monitors if os.path.exists(f"/proc/{pid}")] == []


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    out = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


def test_demo_prints_expected_versus_observed():
    from pybpfasm.lab.netns.monitor import available

    if not available("dropmon"):
        pytest.skip("no 'pybpfasm dropmon' in this tree")
    out, err = run_lab("demo", "udp4-closed-port", "ip4-bad-checksum").communicate(timeout=60)
    assert err == ""
    header = out.index("TOOL ")
    first, second = out[header:].splitlines()[1:3]
    assert first.split()[:5] == ["dropmon", "udp4-closed-port", "3", "3", "ok"]
    assert second.startswith(" ") and second.split()[:4] == ["ip4-bad-checksum", "3", "3", "ok"]
    assert re.search(r"\n2/2 scenarios matched exactly in \d+\.\d s\n$", out), out
    assert build.namespaces_up("pbl-drops-") == []


def test_bad_names_are_one_line_usage_errors():
    for args, message in [(("down", "x;y"), "bad topology name 'x;y'"),
                          (("up", "nope"), "no topology 'nope'"),
                          (("demo", "nope"), "no tool or scenario 'nope'")]:
        proc = run_lab(*args)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2 and message in err and err.count("\n") == 1, (args, err)
