"""What is attached in the kernel, as bpftool and iproute2 report it (the tests' independent view)."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any, Callable


def _bpftool(*args: str) -> list[dict]:
    out = subprocess.run(["bpftool", "-j", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip() or "[]")


def programs_named(prefix: str) -> list[dict]:
    """Loaded programs whose name starts with ``prefix``."""
    return [p for p in _bpftool("prog", "list") if p.get("name", "").startswith(prefix)]


def links_of(prog_ids: set[int]) -> list[dict]:
    """Links holding any of ``prog_ids``."""
    return [link for link in _bpftool("link", "list") if link.get("prog_id") in prog_ids]


def attached_to(cgroup: str) -> set[int]:
    """Ids of the programs attached to ``cgroup`` (bpftool cgroup show)."""
    return {p["id"] for p in _bpftool("cgroup", "show", cgroup)}


def ip_link(netns: str, interface: str) -> str:
    return subprocess.run(["ip", "-n", netns, "-d", "link", "show", interface], check=True,
                          capture_output=True, text=True).stdout


def tc_state(netns: str, interface: str) -> str:
    """The qdiscs and filters of ``interface`` other than the default ones."""
    qdisc = subprocess.run(["tc", "-n", netns, "qdisc", "show", "dev", interface], check=True,
                           capture_output=True, text=True).stdout
    filters = "".join(
        subprocess.run(["tc", "-n", netns, "filter", "show", "dev", interface, hook], check=True,
                       capture_output=True, text=True).stdout
        for hook in ("ingress", "egress"))
    return "".join(line for line in qdisc.splitlines(True) if "clsact" in line) + filters


def settle(read: Callable[[], Any], want: Any, timeout: float = 5.0) -> Any:
    """Poll ``read()`` until it equals ``want`` or ``timeout`` passes; returns the last value.

    Packets are processed in softirq and programs freed by RCU, both a little later.
    """
    deadline = time.monotonic() + timeout
    value = read()
    while value != want and time.monotonic() < deadline:
        time.sleep(0.02)
        value = read()
    return value
