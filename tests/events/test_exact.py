"""Every drop is printed or counted lost, exactly: dropmon under a veth UDP flood.

Generated is known twice over: the C sender's own count of datagrams the stack took, and
the receiver's ``Udp: NoPorts`` (every datagram goes to a closed port: one drop each).
None of these tests depends on timing for its verdict:

* the reader stopped (SIGSTOP) before the flood: the ring takes exactly as many records
  as fit (``floor((size - 1) / stride)``, the kernel's room test), the rest are lost
  (cause ``full``), and printed + lost == generated once it runs again;
* perf buffers, reader stopped: printed + lost == generated, lost > 0;
* a flood the reader keeps up with (20k/s, 0.36 s of slack in the ring, the reader at a
  real-time priority so that other work on a loaded machine cannot starve it): lost == 0.
  Before the consumer position was written with one store this lost 12-22 per 200k
  (``reserve``/``full`` with the ring nearly empty: the kernel read a zeroed position).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from pybpfasm.tools.dropmon import DropEvent, events
from tests.events.flood import Flood

READY = re.compile(r"Tracing .+\.\.\. Ctrl-C to end\.")


@pytest.fixture
def flood():
    with Flood("pev") as f:
        yield f


def start(flood: Flood, *args: str, realtime: bool = False) -> tuple[subprocess.Popen, object]:
    """dropmon on the receiver's namespace, its stdout in a file, once it is attached
    (*realtime*: at SCHED_FIFO priority 1, so a loaded machine cannot starve the reader)."""
    out = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([*(["chrt", "-f", "1"] if realtime else []), sys.executable, "-m", "pybpfasm.cli", "dropmon", "--json", "--no-stack",
                             "--netns", str(flood.inode), *args],
                            stdout=out, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line or READY.fullmatch(line.strip()):
            break
    assert proc.poll() is None, proc.stderr.read()
    return proc, out


def finish(proc: subprocess.Popen, out) -> tuple[list[dict], dict[str, int]]:
    """Stop the tool (it prints what it read first); its events and lost counts by cause."""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    out.seek(0)
    lines = [json.loads(line) for line in out]
    causes: dict[str, int] = {}
    for line in lines:
        if "lost" in line:
            for cause, n in line.items():
                if cause != "lost":
                    causes[cause] = causes.get(cause, 0) + n
            assert line["lost"] == sum(n for c, n in line.items() if c != "lost")
    return [line for line in lines if "lost" not in line], causes


def flooded(flood: Flood, count: int, rate: int) -> int:
    """Send *count* datagrams; the number generated (the sender's count, = NoPorts' delta)."""
    before = flood.no_ports()
    sent = flood.send(count, rate)
    time.sleep(0.2)  # the last datagrams leave the receiver's backlog
    assert flood.no_ports() - before == sent == count
    return sent


def test_stopped_ring_reader_keeps_exactly_what_fits(flood):
    proc, out = start(flood, "--buffer", "ringbuf")
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        generated = flooded(flood, 20_000, 0)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    printed, lost = finish(proc, out)
    stride = (DropEvent.size + 8 + 7) & ~7
    fits = (events.ring.max_entries - 1) // stride
    assert len(printed) == fits
    assert lost == {"full": generated - fits}
    assert len(printed) + sum(lost.values()) == generated


def test_stopped_perf_reader_counts_every_loss(flood):
    proc, out = start(flood, "--buffer", "perf")
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        generated = flooded(flood, 20_000, 0)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    printed, lost = finish(proc, out)
    assert set(lost) == {"full"} and lost["full"] > 0
    assert len(printed) + lost["full"] == generated


def test_a_reader_that_keeps_up_loses_nothing(flood):
    proc, out = start(flood, "--buffer", "ringbuf", realtime=True)
    generated = flooded(flood, 100_000, 20_000)
    printed, lost = finish(proc, out)
    assert lost == {}
    assert len(printed) == generated
    assert {(e["reason"], e["dport"]) for e in printed} == {("NO_SOCKET", 9)}
