"""``pybpfasm defrag`` against nothing and against a bpftrace twin on the same hooks, measured
in the same run: what each costs a fragment flood.

The flood: two-fragment UDP datagrams crafted once and sent on AF_PACKET from the lab's
client for a few seconds; the server reassembles every one of them.  The measure is the
server's own count of reassembled datagrams per second (/proc/net/snmp ReasmOKs), so what a
tracer costs the kernel and what its reader takes from the shared CPUs both show.

* nothing attached;
* ``pybpfasm defrag --json --netns SERVER`` (every fragment and every datagram printed);
* bpftrace printing every fragment that arrives or is freed as a drop, on the same two
  tracepoints (it has no netfilter programs: it cannot see the reassembled datagrams).

Printed: datagrams/s per condition (median of the rounds), each tracer's cost (share of the
flood it takes away), and the ratios defrag/bpftrace.  Run as root:
    python bench/defrag_bench.py [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from measure import ensure_bpftrace, interrupt, median

from pybpfasm.lab.netns import build, defragcases, topology

TOPOLOGY = topology.load("defrag")
CLIENT, SERVER = (TOPOLOGY.namespaces[n].full for n in ("pdfcli", "pdfsrv"))

#: the flood sender, run in its own process: frames built once, sent until the deadline
SENDER = r"""
import sys, time
from pybpfasm.lab.netns import packets
seconds = float(sys.argv[1])
src, dst, smac, dmac = "10.79.0.1", "10.79.0.2", "02:00:0a:4f:00:01", "02:00:0a:4f:00:02"
data = packets.udp4(src, dst, 40000, 7001, bytes(40))
frames = [packets.ethernet(dmac, smac, f) for ident in range(1, 2049)
          for f in packets.fragment_spans(src, dst, packets.IPPROTO_UDP, data, ident, [(0, 24), (24, 48)])]
from pybpfasm.link.netns import entered
import socket
with entered("/run/netns/%s"):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind(("cli0", 0))
print("go", flush=True)
sys.stdin.readline()
sent, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    for frame in frames[:256]:
        sock.send(frame)
    frames = frames[256:] + frames[:256]
    sent += 256
print(sent)
"""


def reassembled() -> int:
    return defragcases.counters(SERVER)["ReasmOKs"]


def flood(seconds: float) -> float:
    """Datagrams reassembled per second by the server during one flood (the sender's
    start-up and frame building are left out)."""
    sender = subprocess.Popen([sys.executable, "-c", SENDER % CLIENT, str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert sender.stdin is not None and sender.stdout is not None
    if sender.stdout.readline().strip() != "go":
        raise SystemExit("the flood sender did not start")
    before, start = reassembled(), time.monotonic()
    sender.stdin.write("\n")
    sender.stdin.flush()
    sender.wait()
    return (reassembled() - before) / (time.monotonic() - start)


def start(argv: list[str], ready: str) -> subprocess.Popen:
    """A tracer with stdout thrown away, once it says *ready* on stderr or stdout."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if ready in line:
            break
    else:
        raise SystemExit(f"{argv[0]} did not start")
    subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)  # keep it draining
    return proc


def stop(proc: subprocess.Popen) -> None:
    interrupt(proc, 15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    bpftrace = ensure_bpftrace()
    from tests.programs.test_defrag import TWIN  # the same twin the tests compare with

    rates: dict[str, list[float]] = {"none": [], "defrag": [], "defrag --summary": [], "bpftrace": []}
    with build.built(TOPOLOGY):
        inode = build.inode(SERVER)
        tools = {
            "defrag": ([sys.executable, "-m", "pybpfasm.cli", "defrag", "--json", "--netns", str(inode)],
                       "Ctrl-C to end"),
            "defrag --summary": ([sys.executable, "-m", "pybpfasm.cli", "defrag", "--summary", "--json",
                                  "--netns", str(inode)], "Ctrl-C to end"),
            "bpftrace": ([bpftrace, "-e", TWIN], "Attaching"),
        }
        for _ in range(args.rounds):
            rates["none"].append(flood(args.seconds))
            for name, (argv, ready) in tools.items():
                proc = start(argv, ready)
                try:
                    rates[name].append(flood(args.seconds))
                finally:
                    stop(proc)
    none, theirs = median(rates["none"]), median(rates["bpftrace"])
    print(f"fragment flood, {args.rounds} rounds of {args.seconds:g} s, datagrams reassembled/s (median):")
    print(f"  {'nothing attached':<26}{none:10.0f}")
    for name in ("defrag", "defrag --summary", "bpftrace"):
        rate = median(rates[name])
        ratio = "" if name == "bpftrace" else f"  {rate / theirs:.2f}x bpftrace's throughput"
        label = "bpftrace twin" if name == "bpftrace" else f"pybpfasm {name}"
        print(f"  {label:<26}{rate:10.0f}  cost {1 - rate / none:6.1%}{ratio}")


if __name__ == "__main__":
    main()
