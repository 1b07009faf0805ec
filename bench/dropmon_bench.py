"""The drop monitor against an equivalent bpftrace script, measured in the same run.

Three numbers per tool, and our/their ratios (issue 6 goals in brackets):

* cold start: process start to the first drop event printed        [<= 0.5x bpftrace]
* peak RSS of the tool process                                      [<= 0.3x bpftrace]
* flood cost: the share of a UDP flood's packets/s that attaching
  the tool costs (every packet is dropped: one event each)          [<= 1.0x bpftrace]

Everything runs in two network namespaces this script creates and removes.
bpftrace comes from Debian (installed here if missing).  Run as root:
    python bench/dropmon_bench.py [--rounds N] [--flood-seconds S]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from measure import ensure_bpftrace, first_event, median

NS_TX, NS_RX = f"pbb-tx-{os.getpid()}", f"pbb-rx-{os.getpid()}"
TX_ADDR, RX_ADDR, PORT = "10.203.0.1", "10.203.0.2", 9

#: the bpftrace twin of `pybpfasm dropmon --netns N --no-stack` (same fields, one line per drop)
BPFTRACE = r"""
tracepoint:skb:kfree_skb
/((struct sk_buff *)args->skbaddr)->dev->nd_net.net->ns.inum == %d/
{
  $skb = (struct sk_buff *)args->skbaddr;
  $ip = (struct iphdr *)($skb->head + $skb->network_header);
  printf("%%d %%s %%s %%d %%d %%d %%s %%d %%d\n", pid, comm, ntop($ip->saddr), $ip->protocol,
         $ip->id, args->reason, $skb->dev->name, args->protocol, nsecs);
}
"""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


@contextmanager
def namespaces() -> Iterator[int]:
    """A veth pair between two namespaces; yields the receiver's netns inode."""
    try:
        for ns in (NS_TX, NS_RX):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", NS_TX, "link", "add", "pbb-tx", "type", "veth", "peer", "name", "pbb-rx",
           "netns", NS_RX)
        sh("ip", "-n", NS_TX, "addr", "add", f"{TX_ADDR}/24", "dev", "pbb-tx")
        sh("ip", "-n", NS_RX, "addr", "add", f"{RX_ADDR}/24", "dev", "pbb-rx")
        sh("ip", "-n", NS_TX, "link", "set", "pbb-tx", "up")
        sh("ip", "-n", NS_RX, "link", "set", "pbb-rx", "up")
        sh("ip", "netns", "exec", NS_RX, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
        yield os.stat(f"/run/netns/{NS_RX}").st_ino
    finally:
        for ns in (NS_TX, NS_RX):
            sh("ip", "netns", "del", ns, check=False)


SENDER = f"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + float(sys.argv[1]); gap = float(sys.argv[2])
while time.monotonic() < end:
    s.sendto(b"x", ("{RX_ADDR}", {PORT}))
    if gap: time.sleep(gap)
"""


def sender(seconds: float, gap: float) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", NS_TX, sys.executable, "-c", SENDER,
                             str(seconds), str(gap)])


def no_ports() -> int:
    """UDP datagrams the receiver namespace dropped for want of a socket."""
    lines = sh("ip", "netns", "exec", NS_RX, "cat", "/proc/net/snmp").stdout.splitlines()
    udp = [line.split() for line in lines if line.startswith("Udp:")]
    return int(udp[1][udp[0].index("NoPorts")])


def tools(inum: int) -> dict[str, list[str]]:
    return {
        "pybpfasm dropmon": [sys.executable, "-m", "pybpfasm.cli", "dropmon", "--json",
                             "--no-stack", "--netns", str(inum)],
        "bpftrace": ["bpftrace", "-e", BPFTRACE % inum],
    }


def cold_start(cmd: list[str]) -> tuple[float, float]:
    """Seconds from spawn to the first event line, and the process's peak RSS (MiB).

    Cold: an empty XDG_CACHE_HOME, so no cached program or kernel symbols help.
    """
    trigger = sender(30, 0.005)
    try:
        with tempfile.TemporaryDirectory(prefix="pbb-cache-") as cache:
            run = first_event(cmd, {**os.environ, "XDG_CACHE_HOME": cache},
                              settle=0.5)  # steady state before its RSS is read
    finally:
        trigger.kill()
        trigger.wait()
    return run.first_event, run.peak_rss_mib


def flood_rate(cmd: list[str] | None, seconds: float) -> float:
    """Packets/s of a UDP flood into the receiver namespace, with *cmd* attached (or none)."""
    proc = None
    if cmd:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ready = threading.Event()
        threading.Thread(target=lambda: (proc.stderr.readline(), ready.set()), daemon=True).start()
        ready.wait(30)
        time.sleep(0.5)
    try:
        before = no_ports()
        flood = sender(seconds, 0)
        t0 = time.monotonic()
        flood.wait()
        rate = (no_ports() - before) / (time.monotonic() - t0)
    finally:
        if proc:
            proc.send_signal(2)
            proc.wait()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--flood-seconds", type=float, default=3.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark loads BPF programs and makes namespaces")
    ensure_bpftrace()
    # byte-compile as pip does at install time, and let the tool use the cache
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "pybpfasm"),
                    str(root / "programs")], check=True, stdout=subprocess.DEVNULL)
    with namespaces() as inum:
        cmds = tools(inum)
        starts = {name: [cold_start(cmd) for _ in range(args.rounds)] for name, cmd in cmds.items()}
        costs: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.rounds):  # paired: a fresh baseline next to each tool run
            for name, cmd in cmds.items():
                base = flood_rate(None, args.flood_seconds)
                costs[name].append(1 - flood_rate(cmd, args.flood_seconds) / base)
    ours, theirs = "pybpfasm dropmon", "bpftrace"
    print(f"{'':18} {'cold start s':>13} {'peak RSS MiB':>13} {'flood cost':>11}")
    for name in cmds:
        print(f"{name:18} {median([s for s, _ in starts[name]]):13.3f} "
              f"{median([r for _, r in starts[name]]):13.1f} {median(costs[name]):11.1%}")
    start_ratio = median([s for s, _ in starts[ours]]) / median([s for s, _ in starts[theirs]])
    rss_ratio = median([r for _, r in starts[ours]]) / median([r for _, r in starts[theirs]])
    cost_ratio = median(costs[ours]) / max(median(costs[theirs]), 1e-9)
    for what, ratio, goal in (("cold start", start_ratio, 0.5), ("peak RSS", rss_ratio, 0.3),
                              ("flood cost", cost_ratio, 1.0)):
        print(f"{what:11} ours/bpftrace = {ratio:5.2f}x  (goal <= {goal}x) "
              f"{'PASS' if ratio <= goal else 'FAIL'}")


if __name__ == "__main__":
    main()
