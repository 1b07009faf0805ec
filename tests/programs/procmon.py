"""A tool whose standard output goes to a file: a monitor of every exec or open in the
system prints far more than a pipe holds, and a tool blocked on a full pipe stops reading
its ring buffer (the ``tool`` fixture's pipes are read only when the tool stops)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from tests.programs.conftest import Tool

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
