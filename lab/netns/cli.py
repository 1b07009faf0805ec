"""``pybpfasm lab up|down|list|demo``: the namespace lab's commands, each ``f(argv, prog)``."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Sequence

from . import build, cases, topology, workcase
from . import demo as demo_


def up(argv: Sequence[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="build a topology's namespaces")
    parser.add_argument("topology", help="a name from 'lab list' or a .toml file")
    args = parser.parse_args(argv)
    topo = topology.load(args.topology)
    build.up(topo)
    names = ", ".join(ns.full for ns in topo.namespaces.values())
    print(f"{topo.name} is up: {names} (remove with 'pybpfasm lab down {topo.name}')")
    return 0


def down(argv: Sequence[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="remove a topology's namespaces, "
                                     "leftovers of interrupted runs included (idempotent)")
    parser.add_argument("topology", help="a topology name (its namespaces are pbl-NAME-*)")
    args = parser.parse_args(argv)
    name = topology.load(args.topology).name if args.topology.endswith(".toml") else args.topology
    removed = build.down(name)
    if name == workcase.TOPOLOGY.name:
        removed += workcase.remove_stale_scratch()
    print(f"removed {', '.join(removed)}" if removed else f"{name}: nothing to remove")
    return 0


def list_(argv: Sequence[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="topologies, whether they are up, and "
                                     "the demo's tools and scenarios")
    parser.parse_args(argv)
    shipped = {name: topology.load(name) for name in topology.available()}
    shipped[workcase.TOPOLOGY.name] = workcase.TOPOLOGY  # built by the demo, declared in code
    up_now = build.namespaces_up()
    width = max(map(len, shipped), default=4)
    for name, topo in shipped.items():
        state = "up" if any(n.startswith(topo.prefix) for n in up_now) else "down"
        print(f"{name:<{width}}  {state:<4}  {topo.description}")
    strays = [n for n in up_now if not any(n.startswith(t.prefix) for t in shipped.values())]
    for netns in strays:
        print(f"{netns}: a lab namespace of no shipped topology (remove with 'lab down')")
    print("\ntools and their scenarios (lab demo [TOOL|SCENARIO]...):")
    for case in cases.all_cases():
        print(f"  {case.tool}")
        for s in case.scenarios():
            print(f"    {s.name:<24} {s.summary}")
    return 0


def demo(argv: Sequence[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="run every tool that runs on this "
                                     "kernel ('pybpfasm TOOL --json') on scenarios whose events "
                                     "are known in advance, and print expected versus observed "
                                     "per tool and scenario; everything built is torn down")
    parser.add_argument("names", nargs="*", metavar="TOOL|SCENARIO",
                        help="only these tools or scenarios (default: all; see 'lab list')")
    args = parser.parse_args(argv)
    selected = cases.select(cases.all_cases(), args.names)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # unwind (tear down) as Ctrl-C does
        signal.signal(sig, _exit_on_signal)
    return 0 if demo_.demo(selected, sys.stdout) else 1


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
