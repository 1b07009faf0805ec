"""What the socket tools' tests share: the scripted workload in a namespace of its own,
the bad-flag check and the nothing-left-attached check."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from typing import Callable, Iterator

import pytest

from pybpfasm.lab.workloads.sockets import Workload
from tests.link.kernel_state import programs_named, settle

_serial = itertools.count()

def unique_comm(stem: str) -> str:
    """A process name no other process here has (at most 15 bytes)."""
    return f"{stem}{os.getpid() % 100000}{next(_serial)}"[:15]


@pytest.fixture(name="workload")
def workload_fixture(make_netns) -> Iterator[Callable[..., Workload]]:
    """Factory of workloads waiting to run, each in a fresh namespace with only loopback up."""
    made: list[Workload] = []

    def make(comm: str, udp: int = 5) -> Workload:
        w = Workload(comm, make_netns().name, udp)
        made.append(w)
        return w

    yield make
    for w in made:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def bad_flag(tool: str, args: list[str], message: str) -> None:
    """*args* make *tool* print one line naming the problem and exit 2."""
    proc = subprocess.run([sys.executable, "-m", "pybpfasm.cli", tool, *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr, proc.stderr


def no_leftovers(tool, name: str, prefix: str, sig: int) -> None:
    """After *sig*, no program whose name starts with *prefix* is loaded."""
    mon = tool(name, "--json")
    assert programs_named(prefix), "the tool's programs are not loaded while it runs"
    code, _, err = mon.stop(sig)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0), err
    assert "Traceback" not in err
    assert settle(lambda: programs_named(prefix), []) == []
