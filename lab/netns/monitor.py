"""A tool as the lab runs it: ``pybpfasm TOOL --json ARGS`` in a child process whose JSON
lines are collected by a reader thread."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from typing import Any, Sequence

from . import children
from .errors import LabError

#: the line every tool prints on stderr once its programs are attached
READY_LINE = re.compile(r"Tracing .*Ctrl-C to end\.")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ToolMonitor:
    """A running ``pybpfasm TOOL --json ARGS``; ``events()`` grows as the tool prints.

    The tool is the lab's child (:mod:`.children`) with ``marker`` (a topology name):
    it dies with this process, and ``lab down MARKER`` stops it if it was left behind.
    ``{"lost": N}`` lines add up in ``lost``; lines that are not JSON objects go to ``bad_lines``.
    """

    #: the event keys it reports (None: every key of the tool's JSON contract)
    keys: frozenset[str] | None = None

    def __init__(self, tool: str, args: Sequence[str], marker: str) -> None:
        self.tool, self.marker = tool, marker
        self.argv = [sys.executable, "-m", "pybpfasm.cli", tool, "--json", *args]
        self._events: list[dict[str, Any]] = []
        self.lost = 0
        self.bad_lines: list[str] = []
        self.returncode: int | None = None
        self._stderr: deque[str] = deque(maxlen=20)
        self._ready = threading.Event()
        self._stderr_closed = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ToolMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the tool and wait until it says it is tracing."""
        self._proc = children.popen(self.argv, self.marker, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, bufsize=1)
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()
        started = self._ready.wait(START_TIMEOUT) and not self._stderr_closed.is_set()
        if not started or self._proc.poll() is not None:
            self.stop()
            last = self._stderr[-1] if self._stderr else f"no 'Tracing ... Ctrl-C to end.' within {START_TIMEOUT:.0f} s"
            raise LabError(f"'pybpfasm {self.tool}' did not start: {last}")

    def stop(self) -> None:
        """SIGINT (the tool's clean exit: it prints what it read, or its summary), then
        SIGKILL if it lingers; every line it printed is in ``events()`` afterwards."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for thread in self._threads:
            thread.join(STOP_TIMEOUT)
        self.returncode = self._proc.returncode
        self._proc = None

    @property
    def stderr(self) -> list[str]:
        """The last lines the tool printed on stderr."""
        return list(self._stderr)

    def events(self) -> list[dict[str, Any]]:
        """Every event printed so far, in order (a snapshot)."""
        return list(self._events)

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                self.bad_lines.append(line.rstrip("\n"))
                continue
            if isinstance(event, dict) and set(event) == {"lost"}:
                self.lost += int(event["lost"])
            elif isinstance(event, dict):
                self._events.append(event)
            else:
                self.bad_lines.append(line.rstrip("\n"))

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip("\n"))
            if READY_LINE.fullmatch(line.rstrip("\n")):
                self._ready.set()
        self._stderr_closed.set()
        self._ready.set()  # the tool exited: stop waiting


def available(tool: str) -> bool:
    """Whether this installation has the ``pybpfasm TOOL`` subcommand."""
    from pybpfasm.tools import TOOLS

    return tool in TOOLS
