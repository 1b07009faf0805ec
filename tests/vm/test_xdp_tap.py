"""xdp-l2fwd into a VM guest, the l2fwd-demo flow of bpf-progs as one scenario
(lab/topologies/xdptap.toml): frames sent from tx into the switch namespace's p0 are
redirected by the FDB into tap0, the virtio-net NIC of a lab qemu guest (qemu's own backend:
no vhost-net here); the guest keeps every frame it receives and sends frames back, which
xdp-l2fwd on tap0 forwards to r1 with a VLAN tag pushed.

Exact: the guest receives each frame the FDB sends it, untagged (both QinQ tags popped where
the entry says so), and nothing else (the misses stay at the switch's stack); r1 receives
each of the guest's frames with the pushed tag; ``stats`` counts exactly those frames, and
as passed the misses and the guest's "ready" broadcasts (each captured at tap0).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter

import pytest

from pybpfasm.lab.netns import build, topology
from pybpfasm.lab.vm import kernels, qemu
from pybpfasm.lab.workloads import frames as wire

from .conftest import full_lab

pytestmark = [pytest.mark.vm, full_lab]

TOPOLOGY = topology.load("xdptap")
NS = {local: ns.full for local, ns in TOPOLOGY.namespaces.items()}
SENDER = TOPOLOGY.interface("tx", "eth0").mac or ""
GUEST = "02:00:0a:59:00:42"
TO_R1 = "02:00:0a:59:00:51"   # the guest's frames: pushed VLAN 60 on the way to r1
UNKNOWN = "02:00:0a:59:00:99"
Q, AD = wire.ETH_P_8021Q, 0x88A8
REPLIES = 4
#: (count, dst, tags sent, tags the guest must see): the FDB's guest entries
FLOWS = [(5, GUEST, [(Q, 10)], []), (3, GUEST, [], []), (2, GUEST, [(AD, 20), (Q, 7)], []),
         (4, UNKNOWN, [], None)]


def _tool(*args: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "pybpfasm.cli", *args, "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _stats() -> dict:
    return _tool("xdp-l2fwd", "stats", "--netns", NS["sw"])[0]


def _payload(i: int, j: int) -> bytes:
    return b"pbl-xdp %02d%02d" % (i, j) + bytes(36)


def test_the_guest_receives_exactly_what_the_fdb_sends_it(kernel_61: kernels.Kernel) -> None:
    config = qemu.GuestConfig(timeout=300, taps=(("tap0", GUEST),), netns=NS["sw"],
                              modules=(*qemu.DEFAULT_MODULES, "virtio_net"))
    argv = ["python3", "-m", "pybpfasm.lab.workloads.frames", "guest", "eth0", TO_R1, str(REPLIES)]
    outcome: dict = {}
    with build.built(TOPOLOGY):
        try:
            _tool("xdp-dummy", "attach", "eth0", "--netns", NS["r1"])
            _tool("xdp-l2fwd", "attach", "p0", "tap0", "--netns", NS["sw"])
            for vlan, extra in (("10", []), (None, []), ("20", ["--pop-inner"])):
                vid = ["--vlan", vlan] if vlan else []
                _tool("xdp-l2fwd", "fdb", "add", "--mac", GUEST, *vid, "--dev", "tap0", *extra, "--netns", NS["sw"])
            _tool("xdp-l2fwd", "fdb", "add", "--mac", TO_R1, "--dev", "p1", "--push-vlan", "60", "--netns", NS["sw"])
            captures = {at: wire.Capture(NS[ns], dev) for at, (ns, dev) in
                        {"tap0": ("sw", "tap0"), "p0": ("sw", "p0"), "r1": ("r1", "eth0")}.items()}
            guest = threading.Thread(target=lambda: outcome.update(result=qemu.run(kernel_61, argv, config)))
            guest.start()
            assert captures["tap0"].wait_for(lambda f: f[6:12] == bytes.fromhex(GUEST.replace(":", "")), 600), \
                "the guest never said it was ready"
            for i, (count, dst, tags, _) in enumerate(FLOWS):
                wire.send(NS["tx"], "eth0", [wire.frame(dst, SENDER, _payload(i, j), tags) for j in range(count)])
            guest.join(400)
            assert not guest.is_alive()
            result = outcome["result"]
            assert result.exit_code == 0, result.stdout + result.stderr
            received = json.loads(result.stdout.splitlines()[-1])["received"]
            expect = [wire.frame(dst, SENDER, _payload(i, j), arrives).hex()
                      for i, (count, dst, _, arrives) in enumerate(FLOWS) if arrives is not None
                      for j in range(count)]
            assert Counter(received) == Counter(expect)
            replies = [wire.frame(TO_R1, GUEST, wire.REPLY % k, [(Q, 60)]) for k in range(REPLIES)]
            assert Counter(captures["r1"].frames(REPLIES)) == Counter(replies)
            misses = captures["p0"].frames(4)
            assert len(misses) == 4 and all(f[:6] == bytes.fromhex(UNKNOWN.replace(":", "")) for f in misses)
            # since attach: the guest's ready frames went up the switch's stack too (all
            # captured on tap0, whose capture started before the guest)
            ready_frames = [f for f in captures["tap0"].frames() if wire.READY in f]
            assert {v: c["packets"] for v, c in _stats().items()} == {
                "forwarded": len(expect) + REPLIES, "passed": 4 + len(ready_frames),
                "dropped": 0, "redirect_errors": 0}
        finally:
            for tool, ns in (("xdp-l2fwd", "sw"), ("xdp-dummy", "r1")):
                subprocess.run([sys.executable, "-m", "pybpfasm.cli", tool, "detach", "--netns", NS[ns]],
                               capture_output=True)


GROUPLESS = """
ip link add pxa type veth peer name pxb && ip link set pxa up && ip link set pxb up
python3 -c 'from pybpfasm import features; print(features.xdp_broadcast())'
python3 -m pybpfasm.cli xdp-l2fwd attach pxa; echo "attach $?"
python3 -m pybpfasm.cli xdp-l2fwd fdb add --mac ff:ff:ff:ff:ff:ff --vlan 5 --dev pxb; echo "group $?"
python3 -m pybpfasm.cli xdp-l2fwd fdb add --mac 02:00:00:00:00:01 --vlan 5 --dev pxb; echo "unicast $?"
python3 -m pybpfasm.cli xdp-l2fwd detach; echo "detach $?"
ls -A /sys/fs/bpf
"""


def test_a_kernel_without_broadcast_forwards_without_groups(lab_host: None) -> None:
    """Debian 5.10 (before BPF_F_BROADCAST, 5.13): the probe says so, the forwarder loads
    without group code, a group entry is refused in one line (exit 1), a unicast one is
    added, and ``detach`` leaves bpffs empty."""
    result = qemu.run(kernels.debian("5.10"), ["sh", "-c", GROUPLESS], qemu.GuestConfig(timeout=300))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "False", "xdp-l2fwd attached to pxa (ifindex 4)", "attach 0", "group 1",
        "fdb added: 02:00:00:00:00:01 vlan 5 -> pxb (ifindex 3)", "unicast 0",
        "xdp-l2fwd detached from pxa (ifindex 4)", "detach 0"]
    assert result.stderr == ("pybpfasm xdp-l2fwd: this kernel cannot send a frame to a group of devices "
                             "(BPF_F_BROADCAST came in 5.13): multicast and broadcast MACs have no FDB "
                             "entries here\n")
