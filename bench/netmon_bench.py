"""netmon's kernel cost on the veth UDP flood, against its peers measured in the same run.

The flood (C, ``sendmmsg``, pinned to one CPU; every datagram dropped for want of a socket:
one ``kfree_skb`` each, tests/events/flood.py) is measured as the sender's CPU ns per
datagram: the drop path runs in its context, so what a tool attached to ``kfree_skb``
costs is the increase over nothing attached (each measurement less the baseline taken just
before it; the median of the rounds).  Contenders, interleaved with baselines:

* ``netmon drop -s netns``: each drop counted in kernel hash maps, nothing per event;
* ``dropmon --no-stack --netns RX``: an event per drop, read and printed;
* bpftrace ``@[comm, args->protocol] = count()`` on ``skb:kfree_skb`` (the issue's anchor);
* an empty program on the hook netmon uses (raw tracepoint ``kfree_skb``).

Goals (issue 14): netmon's cost <= 1.0x bpftrace's and <= 1.5x the empty program's.
Run as root:  python bench/netmon_bench.py [--rounds N] [--packets N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from flood_bench import cost_ns, dropmon
from measure import ensure_bpftrace, median

from tests.events.flood import Flood

BPFTRACE = "tracepoint:skb:kfree_skb { @[comm, args->protocol] = count(); }"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--packets", type=int, default=100_000, help="datagrams per measurement")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark loads BPF programs and makes namespaces")
    ensure_bpftrace()
    with Flood("pnb") as flood:
        cmds = {
            "netmon -s netns": [sys.executable, "-m", "pybpfasm.cli", "netmon", "-s", "netns", "-r", "3600", "--json"],
            "dropmon --no-stack": dropmon("--no-stack", "--netns", str(flood.inode)),
            "bpftrace @[comm, protocol]": ["bpftrace", "-e", BPFTRACE],
            "empty program": None,
        }
        base: list[float] = []
        costs: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.rounds):  # paired: each measurement less the baseline taken just before it
            for name, cmd in cmds.items():
                base.append(cost_ns(flood, None, args.packets))
                costs[name].append(cost_ns(flood, cmd, args.packets, empty=cmd is None) - base[-1])
    print(f"kernel cost per dropped datagram (sender CPU ns over the paired baseline, median of "
          f"{args.rounds} rounds; baselines {median(base):.0f} ns median, {min(base):.0f}-{max(base):.0f}):")
    added = {name: median(v) for name, v in costs.items()}
    for name, v in added.items():
        print(f"  {name:28} {v:7.0f} ns   rounds {[round(x) for x in costs[name]]}")
    ours = added["netmon -s netns"]
    for peer, goal in (("bpftrace @[comm, protocol]", 1.0), ("empty program", 1.5), ("dropmon --no-stack", None)):
        ratio = ours / max(added[peer], 1e-9)
        verdict = "" if goal is None else f"  (goal <= {goal}x) {'PASS' if ratio <= goal else 'FAIL'}"
        print(f"netmon / {peer:28} = {ratio:5.2f}x{verdict}")


if __name__ == "__main__":
    main()
