"""Shared pieces of the benchmarks that run a tool next to its bpftrace twin.

* :func:`first_event`: start a command, time its first event line on stdout, stop it
  (SIGINT, then SIGKILL), and report its peak RSS and how long it took to exit;
* :func:`every`: call a function every few milliseconds in the background (traffic);
* :func:`ensure_bpftrace`, :func:`median`.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple, Sequence


class BenchError(Exception):
    """A measured command failed: the message is one line for the report."""


class Run(NamedTuple):
    """One measured start of a command."""

    first_event: float  # seconds from spawn to the first event line
    peak_rss_mib: float  # the process's peak resident set (its own, not its children's)
    exit_seconds: float  # from SIGINT to the process being reaped


def ensure_bpftrace() -> str:
    """The path of bpftrace, installed from the distribution if missing."""
    if shutil.which("bpftrace") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "bpftrace"], check=True,
                       stdout=subprocess.DEVNULL)
    path = shutil.which("bpftrace")
    if path is None:
        raise BenchError("bpftrace is not installed and apt-get could not install it")
    return path


def median(xs: Sequence[float]) -> float:
    ordered = sorted(xs)
    return ordered[len(ordered) // 2]


def _is_event(line: str) -> bool:
    """Any stdout line but bpftrace's ``Attaching N probes...`` banner."""
    return bool(line.strip()) and not line.startswith("Attaching ")


def interrupt(proc: subprocess.Popen, grace: float) -> None:
    """SIGINT (how the tools and bpftrace end: bpftrace outlives SIGTERM), SIGKILL after *grace* s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop(proc: subprocess.Popen, grace: float) -> tuple[float, float]:
    """SIGINT (bpftrace ignores SIGTERM), SIGKILL after *grace* s: (seconds to exit, peak RSS MiB)."""
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    while True:
        pid, _, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - start > grace:
            proc.kill()
            _, _, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.001)
    proc.returncode = 0  # reaped here: keep Popen from waiting for it again
    return time.monotonic() - start, usage.ru_maxrss / 1024


def first_event(cmd: Sequence[str], env: dict[str, str] | None = None, timeout: float = 30.0,
                settle: float = 0.3, grace: float = 5.0) -> Run:
    """Run *cmd* until its first event line (then *settle* s more), stop it and measure it."""
    with tempfile.TemporaryFile("w+") as stderr:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True)
        assert proc.stdout is not None
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                while True:
                    left = start + timeout - time.monotonic()
                    if left <= 0 or not sel.select(left):
                        raise BenchError(f"{cmd[0]}: no event within {timeout:.0f} s")
                    line = proc.stdout.readline()
                    if not line:
                        stderr.seek(0)
                        last = stderr.read().strip().splitlines() or ["(nothing on stderr)"]
                        raise BenchError(f"{os.path.basename(cmd[0])} exited before its first "
                                         f"event: {last[-1]}")
                    if _is_event(line):
                        break
            elapsed = time.monotonic() - start
            # keep reading so that a tool printing every event never blocks on a full pipe
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            time.sleep(settle)
        finally:
            exit_seconds, rss = _stop(proc, grace)
    return Run(elapsed, rss, exit_seconds)


@contextmanager
def every(interval: float, action: Callable[[], None]) -> Iterator[None]:
    """Call *action* every *interval* seconds in a background thread while the block runs."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(interval):
            action()

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        yield
    finally:
        done.set()
        worker.join()
