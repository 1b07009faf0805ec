"""Fixtures: root and BPF or skip, throwaway network namespaces (``pbt-<pid>-<n>``) and a veth pair."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
from typing import Iterator, NamedTuple

import pytest

from pybpfasm.link.netns import entered

_serial = itertools.count()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="session", autouse=True)
def privileged() -> None:
    if os.geteuid() != 0:
        pytest.skip("attaching programs needs root")
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool (the tests' independent view of what is attached) is not installed")


class Netns(NamedTuple):
    name: str
    inum: int


@pytest.fixture
def make_netns() -> Iterator:
    """Factory of namespaces with loopback up; all removed at teardown."""
    made: list[str] = []

    def make() -> Netns:
        name = f"pbt-{os.getpid()}-{next(_serial)}"
        _ip("netns", "add", name)
        made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return Netns(name, os.stat(f"/run/netns/{name}").st_ino)

    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


class VethPair(NamedTuple):
    """``sender`` (10.201.0.1) in one namespace, ``receiver`` (10.201.0.2) in the other."""

    sender_ns: str
    receiver_ns: str
    sender: str = "pbt-tx"
    receiver: str = "pbt-rx"
    sender_addr: str = "10.201.0.1"
    receiver_addr: str = "10.201.0.2"


@pytest.fixture
def veth(make_netns) -> VethPair:
    a, b = make_netns(), make_netns()
    pair = VethPair(a.name, b.name)
    _ip("-n", a.name, "link", "add", pair.sender, "type", "veth", "peer", "name", pair.receiver,
        "netns", b.name)
    _ip("-n", a.name, "addr", "add", f"{pair.sender_addr}/24", "dev", pair.sender)
    _ip("-n", b.name, "addr", "add", f"{pair.receiver_addr}/24", "dev", pair.receiver)
    _ip("-n", a.name, "link", "set", pair.sender, "up")
    _ip("-n", b.name, "link", "set", pair.receiver, "up")
    # resolve the neighbour now so that only the test's packets cross later
    _ip("-n", a.name, "neigh", "replace", pair.receiver_addr, "lladdr",
        _mac(b.name, pair.receiver), "dev", pair.sender, "nud", "permanent")
    return pair


def _mac(netns: str, interface: str) -> str:
    out = subprocess.run(["ip", "-n", netns, "-o", "link", "show", interface], check=True,
                         capture_output=True, text=True).stdout
    return out.split("link/ether ")[1].split()[0]


def send_udp(netns: str, address: str, port: int, count: int) -> None:
    """Send ``count`` one-byte UDP datagrams from a socket in ``netns`` to ``address:port``."""
    with entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for i in range(count):
            sock.sendto(bytes([i & 0xFF]), (address, port))


def cgroup2_root() -> str | None:
    """Where the cgroup v2 hierarchy is mounted, if anywhere."""
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


@pytest.fixture
def cgroup() -> Iterator[str]:
    """A fresh cgroup v2 directory, removed at teardown."""
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    path = os.path.join(root, f"pbt-{os.getpid()}-{next(_serial)}")
    os.mkdir(path)
    yield path
    os.rmdir(path)


def run_in(cgroup: str, netns: str, code: str) -> None:
    """Run Python ``code`` in a child process placed in ``cgroup`` and ``netns``."""
    script = f'echo $$ > {cgroup}/cgroup.procs && exec ip netns exec {netns} "$0" -c "$1"'
    subprocess.run(["sh", "-c", script, sys.executable, code], check=True)
