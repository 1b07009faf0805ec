"""The "Writing a tool" example (docs/examples/dropreasons.py) counts known drops exactly."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from pybpfasm.link.netns import entered

EXAMPLE = str(Path(__file__).parents[2] / "docs" / "examples" / "dropreasons.py")


def _udp_to_closed_port(netns: str, count: int) -> None:
    with entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for _ in range(count):
            sock.sendto(b"x", ("127.0.0.1", 9))


def test_counts_by_reason_per_interval(tool, make_netns):
    ns = make_netns()
    mon = tool("--netns", str(ns.inum), "--json", "-i", "0.3", script=EXAMPLE)
    _udp_to_closed_port(ns.name, 7)
    time.sleep(0.5)
    _udp_to_closed_port(ns.name, 4)
    time.sleep(0.5)
    rows = mon.events()
    assert {r["reason"] for r in rows} == {"NO_SOCKET"}
    assert sum(r["count"] for r in rows) == 11
    assert len(rows) >= 2  # the two bursts fell in different intervals


def test_text_is_a_table_per_interval(tool, make_netns):
    ns = make_netns()
    mon = tool("--netns", str(ns.inum), "-i", "0.3", script=EXAMPLE)
    _udp_to_closed_port(ns.name, 3)
    time.sleep(0.5)
    code, out, err = mon.stop()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split() == ["REASON", "COUNT"]
    assert any(line.split() == ["NO_SOCKET", "3"] for line in lines)
