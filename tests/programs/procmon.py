"""A tool whose standard output goes to a file: a monitor of every exec or open in the
system prints far more than a pipe holds, and a tool blocked on a full pipe stops reading
its ring buffer (the ``tool`` fixture's pipes are read only when the tool stops)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from tests.programs.conftest import Tool

#: where Debian's bpftrace package puts its tools (execsnoop.bt...)
TOOLS = "/usr/sbin"
#: seconds a tool may take to become ready: in a TCG guest (the VM lab) building execsnoop's
#: programs alone takes longer than the harness's default 20 s
READY_TIMEOUT = 180.0


class FileTool(Tool):
    """``python -m pybpfasm.cli ARGS`` with stdout in *path*."""

    def __init__(self, path, *args: str) -> None:
        self.out = open(path, "w+")  # noqa: SIM115 - closed by events() or file_tools()
        self.proc = subprocess.Popen([sys.executable, "-m", "pybpfasm.cli", *args], stdout=self.out,
                                     stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []

    def events(self, sig: int = signal.SIGINT) -> list[dict]:
        code, _, err = self.stop(sig)
        assert code == 0, err
        self.out.seek(0)
        rows = [json.loads(line) for line in self.out if line.strip()]
        self.out.close()
        return rows


@contextmanager
def file_tools(folder) -> Iterator[Callable[..., FileTool]]:
    """``start(*args)`` starts a :class:`FileTool` (output under *folder*) and waits until it
    is ready; every one still running is killed on the way out."""
    started: list[FileTool] = []

    def start(*args: str) -> FileTool:
        t = FileTool(folder / f"out{len(started)}", *args)
        started.append(t)
        t.wait_ready(READY_TIMEOUT)
        return t

    try:
        yield start
    finally:
        for t in started:
            if t.proc.poll() is None:
                t.proc.kill()
                t.proc.wait()
            t.out.close()


class Bpftrace:
    """A bpftrace script (a name under :data:`TOOLS`, or a path) writing to a file; its perf
    buffers enlarged so that the noise of the rest of the system does not push the workload's
    lines out ('Lost N events').  Ready once BEGIN printed two lines."""

    def __init__(self, script: str, out) -> None:
        self.out = out
        env = {**os.environ, "BPFTRACE_PERF_RB_PAGES": "1024"}
        self.proc = subprocess.Popen(["bpftrace", "-o", str(out), os.path.join(TOOLS, script)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (out.exists() and out.read_text().count("\n") >= 2):
            time.sleep(0.1)  # the header lines come from BEGIN, once every probe is attached

    def lines(self) -> list[str]:
        self.proc.send_signal(signal.SIGINT)  # it may outlive SIGTERM (LAB-FACTS)
        try:
            self.proc.wait(20)
        finally:
            self.proc.kill()
        return self.out.read_text().splitlines()
