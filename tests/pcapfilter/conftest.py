"""Fixtures: a namespace of the pcap-filter tests' own (``ppf-<pid>-<n>``), and the tool harness."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
from typing import Iterator, NamedTuple

import pytest

from pybpfasm.link.netns import entered
from tests.programs.conftest import tool  # noqa: F401 - fixture

_serial = itertools.count()


class Netns(NamedTuple):
    name: str
    inum: int


@pytest.fixture
def ppf_netns() -> Iterator[Netns]:
    """A namespace with loopback up, removed at teardown."""
    name = f"ppf-{os.getpid()}-{next(_serial)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        yield Netns(name, os.stat(f"/run/netns/{name}").st_ino)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def veth() -> Iterator[tuple[str, int, int]]:
    """``ppf-a`` (frames are sent here) and its peer ``ppf-b``, alone in a fresh namespace with
    IPv6 off (no neighbour discovery): (namespace, ppf-a's ifindex, namespace inode)."""
    name = f"ppf-{os.getpid()}-v{next(_serial)}"
    _ip("netns", "add", name)
    try:
        for conf in ("all", "default"):
            _ip("netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1")
        _ip("-n", name, "link", "add", "ppf-a", "type", "veth", "peer", "name", "ppf-b")
        for dev in ("ppf-a", "ppf-b"):
            _ip("-n", name, "link", "set", dev, "up")
        with entered(name):
            ifindex = socket.if_nametoindex("ppf-a")
        yield name, ifindex, os.stat(f"/run/netns/{name}").st_ino
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
