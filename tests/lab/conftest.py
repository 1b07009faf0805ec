"""Fixtures: root and nft or skip; the drops topology built once per module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Iterator

import pytest

from pybpfasm.lab.netns import build, scenario
from pybpfasm.link.netns import entered


@pytest.fixture(scope="session")
def privileged() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab creates network namespaces: needs root")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"the lab needs {tool} (apt-get install iproute2 nftables)")


@pytest.fixture(scope="module")
def drops_lab(privileged) -> Iterator[scenario.ScenarioSet]:
    """The drops scenarios with their topology up (removed after the module)."""
    scenarios = scenario.load("drops")
    build.down(scenarios.topology.name)  # an interrupted earlier run
    with build.built(scenarios.topology):
        yield scenarios


def host_links() -> set[str]:
    """Interface names in the namespace the tests run in (the host's)."""
    out = subprocess.run(["ip", "-o", "link", "show"], check=True, capture_output=True, text=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def ip_json(netns: str, *args: str) -> list[dict]:
    out = subprocess.run(["ip", "-j", "-n", netns, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


def sysctl(netns: str, key: str) -> str:
    with entered(netns), open("/proc/sys/" + key.replace(".", "/")) as f:
        return f.read().strip()
