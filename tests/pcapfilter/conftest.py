"""Fixtures: a namespace of the pcap-filter tests' own (``ppf-<pid>-<n>``), and the tool harness."""

from __future__ import annotations

import itertools
import os
import subprocess
from typing import Iterator, NamedTuple

import pytest

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
