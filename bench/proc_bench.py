"""The cost of execsnoop and opensnoop under an exec storm and an open storm, against their
bpftrace twins measured in the same run (issue 13).

Each round runs the storm three times, in an order that rotates from round to round:
with nothing attached, with the tool (``pybpfasm TOOL --json``) and with its bpftrace twin
(the script :mod:`startup_bench` starts), both printing every event to a pipe that is read
and thrown away.  The storm is a child process pinned to one CPU that, for
``--seconds`` s, execs ``/bin/true`` (posix_spawn and wait) or opens and closes a file,
and reports how many it made and the CPU time it and its children used.  Calls per second
are given both ways: per second of wall time (what a workload sees, but on a machine
shared with other work mostly noise) and per second of the storm's own CPU time (the
kernel runs the tracers' programs in the calling task, so their cost is there, and other
tenants' load is not).  A tracer's cost is the CPU time it adds to each call,
``1/rate_with - 1/rate_none``.  With kernel.bpf_stats_enabled set for the run (and put
back after), the kernel also counts the time spent in each tracer's programs: the
``kernel ns/call`` column is that time over the calls the storm made, the steadiest of the
three.  The table gives the medians over the rounds and our costs as ratios of bpftrace's.
Goal: at most 1.0x.

Run as root from the checkout: ``.venv/bin/python bench/proc_bench.py [--rounds N] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

from measure import BenchError, ensure_bpftrace, interrupt, median
from startup_bench import TOOLS

GOAL = 1.0
#: what each storm makes, and the tool that traces it
STORMS = {"exec": "execsnoop", "open": "opensnoop"}
#: the CPU the storm runs on (the tracers' readers are left the others)
STORM_CPU = 0


def storm(kind: str, seconds: float, folder: str) -> tuple[int, float]:
    """Make execs or opens for *seconds*: how many were made, and the CPU seconds they took
    (this process's and its reaped children's)."""
    os.sched_setaffinity(0, {STORM_CPU})
    path = os.path.join(folder, "f")
    open(path, "w").close()
    made, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(10 if kind == "exec" else 1000):
            if kind == "exec":
                os.waitpid(os.posix_spawn("/bin/true", ["true", "storm"], {}), 0)
            else:
                os.close(os.open(path, os.O_RDONLY))
        made += 10 if kind == "exec" else 1000
    cpu = sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage,
                                                   (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))
    return made, cpu


STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def programs() -> dict[int, int]:
    """Every loaded program's id and the nanoseconds the kernel has spent in it."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return {p["id"]: p.get("run_time_ns", 0) for p in json.loads(out)}


class Tracer:
    """A tracer started and attached (its readiness line seen), its output drained; the
    programs it loaded are the ones that appeared meanwhile."""

    def __init__(self, argv: list[str], ready_on_stderr: bool) -> None:
        self.lost = 0
        before = programs()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, rest = (self.proc.stderr, self.proc.stdout) if ready_on_stderr else (self.proc.stdout, self.proc.stderr)
        marker = "Tracing" if ready_on_stderr else "ready"
        deadline = time.monotonic() + 60
        while not (line := ready.readline()).startswith(marker):
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                raise BenchError(f"{argv[0]} did not start: {rest.read()[-300:] if not line else 'timeout'}")
        for stream in (ready, rest):
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()
        self.ids = set(programs()) - set(before)

    def kernel_ns(self) -> int:
        """Nanoseconds spent in its programs so far."""
        now = programs()
        return sum(now.get(i, 0) for i in self.ids)

    def _drain(self, stream) -> None:
        for line in stream:
            if "Lost" in line or '"lost"' in line:
                self.lost += 1

    def stop(self) -> None:
        interrupt(self.proc, 10)


class Rate(NamedTuple):
    """One storm's calls per second of wall time and per second of its CPU time."""

    wall: float
    cpu: float


def run_storm(kind: str, seconds: float, folder: str) -> tuple[Rate, int]:
    """The rates of one storm in a child process, and the calls it made."""
    done = subprocess.run([sys.executable, __file__, "--storm", kind, str(seconds), folder],
                          capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode:
        raise BenchError(f"the {kind} storm failed: {done.stderr.strip()[-200:]}")
    made, cpu = done.stdout.split()
    return Rate(int(made) / seconds, int(made) / float(cpu)), int(made)


class Result(NamedTuple):
    rates: dict[str, list[Rate]]
    lost: dict[str, int]
    kernel_ns: dict[str, list[float]]  # per call


def measure(kind: str, rounds: int, seconds: float, folder: str) -> Result:
    tool = TOOLS[STORMS[kind]]
    pybpfasm = str(Path(sys.executable).with_name("pybpfasm"))
    tracers = {"ours": ([pybpfasm, *tool.argv], True),
               "bpftrace": (["bpftrace", "-e", 'BEGIN { printf("ready\\n"); } ' + tool.bpftrace], False)}
    order = ["none", *tracers]
    rates: dict[str, list[Rate]] = {name: [] for name in order}
    lost = dict.fromkeys(tracers, 0)
    kernel: dict[str, list[float]] = {name: [] for name in tracers}
    for n in range(rounds):
        for name in order[n % 3:] + order[:n % 3]:
            tracer = Tracer(*tracers[name]) if name != "none" else None
            try:
                spent = tracer.kernel_ns() if tracer else 0
                rate, made = run_storm(kind, seconds, folder)
                rates[name].append(rate)
                if tracer is not None:
                    kernel[name].append((tracer.kernel_ns() - spent) / made)
            finally:
                if tracer is not None:
                    tracer.stop()
                    lost[name] += tracer.lost
    return Result(rates, lost, kernel)


def report(kind: str, result: Result, rounds: int) -> bool:
    def rate(name: str, field: str) -> float:
        return median([getattr(r, field) for r in result.rates[name]])

    cost = {name: median([1e6 / r.cpu - 1e6 / b.cpu for r, b in zip(rates, result.rates["none"])])
            for name, rates in result.rates.items() if name != "none"}
    kernel = {name: median(ns) for name, ns in result.kernel_ns.items()}
    ratio = cost["ours"] / cost["bpftrace"] if cost["bpftrace"] > 0 else float("inf")
    kernel_ratio = kernel["ours"] / kernel["bpftrace"]
    print(f"\n{kind} storm ({STORMS[kind]}): medians of {rounds} rounds")
    print(f"{'':9} {kind + 's/s wall':>13} {kind + 's/s CPU':>13} {'cost us/call':>13} "
          f"{'kernel ns/call':>14} {'lost reports':>12}")
    print(f"{'none':9} {rate('none', 'wall'):13.0f} {rate('none', 'cpu'):13.0f}")
    for name in ("ours", "bpftrace"):
        print(f"{name:9} {rate(name, 'wall'):13.0f} {rate(name, 'cpu'):13.0f} {cost[name]:13.2f} "
              f"{kernel[name]:14.0f} {result.lost[name]:12d}")
    met = kernel_ratio <= GOAL and ratio <= GOAL
    print(f"ours/bpftrace: CPU cost {ratio:.2f}x, kernel time {kernel_ratio:.2f}x "
          f"(goal <= {GOAL}x: {'ok' if met else 'MISS'}; a negative or infinite CPU cost is below the noise)")
    return met


def main() -> int:
    if sys.argv[1:2] == ["--storm"]:
        print(*storm(sys.argv[2], float(sys.argv[3]), sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per storm (default 2)")
    ap.add_argument("--storm", dest="storms", action="append", choices=sorted(STORMS),
                    help="only this storm (repeatable; default: both)")
    args = ap.parse_args()
    if args.rounds < 1 or args.seconds <= 0:
        ap.error("--rounds and --seconds must be positive")
    if os.geteuid() != 0:
        print("proc_bench: run as root (the tools load BPF programs)", file=sys.stderr)
        return 1
    ok = True
    stats = STATS.read_text()
    try:
        ensure_bpftrace()
        STATS.write_text("1\n")
        with tempfile.TemporaryDirectory(prefix="pybpfasm-proc-") as folder:
            for kind in args.storms or sorted(STORMS):
                ok &= report(kind, measure(kind, args.rounds, args.seconds, folder), args.rounds)
    except BenchError as err:
        print(f"proc_bench: {err}", file=sys.stderr)
        return 1
    finally:
        STATS.write_text(stats)
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
