"""The drop monitor on each hook this kernel offers: the raw tracepoint (with BTF), the
tracepoint, and the kprobe fallback.

Runs here and, through the VM lab, on the Debian kernels (``lab vm matrix -- pytest tests/kernel``):
on 5.10 there are no drop reasons, on 6.1 the kprobe lands on kfree_skb_reason, on 6.12+ on
sk_skb_reason_drop.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from pybpfasm.tools.common.reasons import drop_reasons
from pybpfasm.link import kprobes_available
from pybpfasm.link.netns import entered

DROPS = 3


@pytest.fixture
def netns():
    name = f"pbk-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name, os.stat(f"/run/netns/{name}").st_ino
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.parametrize("hook", ["raw_tracepoint", "tracepoint", "kprobe"])
def test_drops_on_each_hook(hook, netns):
    if hook == "kprobe" and not kprobes_available():
        pytest.skip("kprobes: not in this kernel, covered in the VM lab")
    name, inum = netns
    mon = subprocess.Popen(
        [sys.executable, "-m", "pybpfasm.cli", "dropmon", "--json", "--hook", hook,
         "--netns", str(inum), "--count", str(DROPS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        while not seen or "Tracing packet drops" not in seen[-1]:  # notes may come first
            seen.append(mon.stderr.readline())
            assert seen[-1], "".join(seen)  # the tool ended before it was ready
        with entered(name):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            for i in range(DROPS):
                sock.sendto(bytes([i]), ("127.0.0.1", 9))
        out, err = mon.communicate(timeout=60)
    finally:
        if mon.poll() is None:
            mon.kill()
            mon.wait()
    assert mon.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == DROPS, events
    expected_reason = "NO_SOCKET" if drop_reasons() is not None else None
    for ev in events:
        assert (ev["src"], ev["dst"], ev["proto"], ev["dport"]) == ("127.0.0.1", "127.0.0.1", "udp", 9)
        assert (ev["ifname"], ev["netns"], ev["reason"]) == ("lo", inum, expected_reason)
        assert "udp" in ev["location"], ev["location"]
    assert time.time() - events[0]["time"] < 120
