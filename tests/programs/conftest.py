"""The per-tool harness: start a tool, wait until it is attached, make traffic, stop it,
parse its JSON.  Every tool's tests use it; namespaces come from the link tests."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from typing import Iterator

import pytest

from tests.link.conftest import make_netns, privileged, veth  # noqa: F401 - fixtures

#: what every tool prints on stderr once its programs are attached
READY = re.compile(r"Tracing .+\.\.\. Ctrl-C to end\.")


class Tool:
    """A tool running as a subprocess; :meth:`wait_ready` returns once it says it is attached.

    The tool is ``python -m pybpfasm.cli ARGS`` (another *module*, or a *script* path).
    """

    def __init__(self, *args: str, module: str = "pybpfasm.cli", script: str | None = None,
                 env: dict | None = None) -> None:
        command = [script] if script is not None else ["-m", module]
        self.proc = subprocess.Popen([sys.executable, *command, *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.stderr.append(line)
            if READY.fullmatch(line.strip()):
                return
        self.proc.kill()
        raise AssertionError(f"tool never became ready: {''.join(self.stderr)}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.stderr) + err

    def finish(self, timeout: float = 15.0) -> tuple[int, str, str]:
        """Wait for the tool to end by itself (``--count``, ``--duration``)."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.stderr) + err

    def events(self, sig: int = signal.SIGINT) -> list[dict]:
        code, out, err = self.stop(sig)
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def tool() -> Iterator:
    started: list[Tool] = []

    def start(*args: str, **kw) -> Tool:
        t = Tool(*args, **kw)
        started.append(t)
        t.wait_ready()
        return t

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait()
