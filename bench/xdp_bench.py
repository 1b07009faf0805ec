"""Forwarded packets/s through xdp-l2fwd (native XDP on a veth) against the Linux bridge and
against a tc BPF program that redirects, on the same topology in the same run.  [issue 15
goal: xdp-l2fwd >= 1.5x the bridge]

The lab's ``xdpfwd`` topology: frames enter the switch namespace on p0 and must leave on p1
to r1, by one of

* **xdp-l2fwd**: ``xdp-l2fwd attach p0``, one FDB entry (r1's MAC -> p1);
* **bridge**: br0 over p0 and p1, a static fdb entry for r1's MAC on p1 (no flooding);
* **tc**: a clsact ingress program on p0 that ``bpf_redirect``s every frame to p1.

The sender is the kernel itself: BPF_PROG_TEST_RUN in live-frames mode runs an XDP_TX
program ``--packets`` times on tx's eth0, which transmits each frame into p0 (a veth whose
peer has NAPI: an XDP program, or GRO for the bridge and tc).  r1's eth0 runs an XDP program
that counts and drops what arrives.  A trial's rate is the frames that reached r1 over the
time from the first send until none arrive, with the share of the frames sent that arrived
(all, measured: each batch of 64 is forwarded in the softirq that follows its send, on the
sending CPU, so a rate is one over the sum of sending, forwarding and receiving a frame,
which understates the forwarders' own differences).  The configurations take turns
(``--rounds`` times) and each rate is the median of its trials.  Run as root:
    python bench/xdp_bench.py [--rounds N] [--packets N]
"""

from __future__ import annotations

import argparse
import fcntl
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from measure import median

from pybpfasm.dsl import Collection, PerCPUArray, tc, u64, xdp
from pybpfasm.lab.netns import build
from pybpfasm.lab.netns import xdpcases as lab
from pybpfasm.lab.workloads import frames as wire
from pybpfasm.link.netns import entered
from pybpfasm.sys import Cmd, bpf, ffi, new_attr
from pybpfasm.sys.consts import TEST_XDP_LIVE_FRAMES
from pybpfasm.sys.syscall import address

NS = lab.NS
arrived = PerCPUArray(u64, 1, name="bench_arrived")
# ethtool.h: set generic receive offload (what gives a veth without XDP its NAPI)
SIOCETHTOOL, ETHTOOL_SGRO = 0x8946, 0x2C


@xdp
def transmit(b, ctx) -> None:
    b.return_(b.btf.enum("xdp_action")["XDP_TX"])


@xdp
def count_and_drop(b, ctx) -> None:
    arrived.increment(b, 0)
    b.return_(b.btf.enum("xdp_action")["XDP_DROP"])


def tc_redirect(ifindex: int):
    @tc
    def redirect(b, ctx) -> None:
        b.return_(b.redirect(ifindex, 0))
    return redirect


def ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", NS[ns], *args], check=True, capture_output=True)


def tool(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pybpfasm.cli", *args], check=True, capture_output=True)


def set_gro(ns: str, dev: str, on: bool) -> None:
    with entered(NS[ns]), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        value = struct.pack("=II", ETHTOOL_SGRO, int(on))
        buf = ffi.new("char[]", value)
        ifreq = struct.pack("16sP", dev.encode(), int(ffi.cast("uintptr_t", buf)))
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)


def ifindex(ns: str, dev: str) -> int:
    with entered(NS[ns]):
        return socket.if_nametoindex(dev)


def send_live(prog, frame: bytes, index: int, packets: int) -> None:
    """Transmit *frame* *packets* times from device *index* (in this thread's namespace)."""
    data = ffi.from_buffer(frame)
    ctx = ffi.new("char[]", struct.pack("=6I", 0, len(frame), 0, index, 0, 0))
    attr = new_attr()
    t = attr.test
    t.prog_fd = prog.fileno()
    t.data_in, t.data_size_in = address(data), len(frame)
    t.ctx_in, t.ctx_size_in = address(ctx), 24
    t.repeat, t.flags, t.batch_size = packets, TEST_XDP_LIVE_FRAMES, 64
    bpf(Cmd.PROG_TEST_RUN, attr)


class Bench:
    def __init__(self, coll: Collection) -> None:
        self.coll = coll
        self.tx = coll.load(transmit)
        coll.load(count_and_drop)
        coll.attach(count_and_drop, interface="eth0", netns=NS["r1"], mode="native")
        self.counter = coll.map(arrived)
        self.frame = wire.frame(lab.R1, lab.SENDER, bytes(46))
        self.tx_index = ifindex("tx", "eth0")

    def arrived(self) -> int:
        return sum(self.counter[0])

    def trial(self, packets: int) -> tuple[float, float]:
        """Frames per second that reached r1, and the share of those sent that did."""
        start_count = self.arrived()
        start = time.monotonic()
        with entered(NS["tx"]):
            send_live(self.tx, self.frame, self.tx_index, packets)
        last, seen = time.monotonic(), self.arrived()
        while True:  # until nothing more arrives for 50 ms
            time.sleep(0.05)
            now = self.arrived()
            if now == seen:
                break
            last, seen = time.monotonic(), now
        return (seen - start_count) / (last - start), (seen - start_count) / packets


def xdp_l2fwd() -> Callable[[], None]:
    tool("xdp-l2fwd", "attach", "p0", "--mode", "native", "--netns", NS["sw"])
    tool("xdp-l2fwd", "fdb", "add", "--mac", lab.R1, "--dev", "p1", "--netns", NS["sw"])
    return lambda: tool("xdp-l2fwd", "detach", "--netns", NS["sw"])


def bridge() -> Callable[[], None]:
    set_gro("sw", "p0", True)
    ip("sw", "link", "add", "br0", "type", "bridge")
    for port in ("p0", "p1"):
        ip("sw", "link", "set", port, "master", "br0")
    ip("sw", "link", "set", "br0", "up")
    subprocess.run(["bridge", "-n", NS["sw"], "fdb", "add", lab.R1, "dev", "p1", "master", "static"],
                   check=True, capture_output=True)

    def undo() -> None:
        ip("sw", "link", "del", "br0")
        set_gro("sw", "p0", False)
    return undo


def tc_prog(coll: Collection) -> Callable[[], None]:
    set_gro("sw", "p0", True)
    pdef = tc_redirect(ifindex("sw", "p1"))
    coll.load(pdef)
    coll.attach(pdef, interface="p0", netns=NS["sw"])

    def undo() -> None:
        coll.unload(pdef)
        set_gro("sw", "p0", False)
    return undo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--packets", type=int, default=1_000_000)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"xdp-l2fwd": [], "bridge": [], "tc": []}
    shares: dict[str, list[float]] = {name: [] for name in rates}
    with build.built(lab.TOPOLOGY), Collection() as coll:
        bench = Bench(coll)
        setups = {"xdp-l2fwd": xdp_l2fwd, "bridge": bridge, "tc": lambda: tc_prog(coll)}
        for _ in range(args.rounds):
            for name, setup in setups.items():
                undo = setup()
                try:
                    bench.trial(args.packets // 10)  # warm-up
                    rate, share = bench.trial(args.packets)
                    rates[name].append(rate)
                    shares[name].append(share)
                finally:
                    undo()
    best = {name: median(r) for name, r in rates.items()}
    for name, r in rates.items():
        print(f"{name:<10} {best[name] / 1e6:6.3f} Mpps  (trials: {', '.join(f'{x / 1e6:.3f}' for x in r)}; "
              f"share of the frames sent that arrived: {', '.join(f'{x:.0%}' for x in shares[name])})")
    print(f"xdp-l2fwd / bridge: {best['xdp-l2fwd'] / best['bridge']:.2f}x  (goal >= 1.5x)")
    print(f"xdp-l2fwd / tc:     {best['xdp-l2fwd'] / best['tc']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
