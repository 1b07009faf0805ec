"""The ring buffer's consumer position goes from one value to the next in one store.

The kernel reads it at any moment (``__bpf_ringbuf_reserve``), so a value it must never
see, such as the 0 ``struct.pack_into`` writes before it packs, makes a reservation fail
with the ring nearly empty.  A hardware watchpoint (gdb) sees every value the word takes
while the reader publishes one new position: exactly the new one, deterministically
(with ``pack_into`` it reports ``[144, 0, 144]``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.events.programs import RECORD

HERE = Path(__file__).parent


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_consumer_position_is_published_in_one_store(tmp_path):
    addr = tmp_path / "addr"
    run = subprocess.run(["gdb", "-q", "-batch", "-nx", "-x", str(HERE / "gdb_watch.py"), "--args",
                          sys.executable, "-m", "tests.events.watched_reader", str(addr)],
                         capture_output=True, text=True, timeout=120, cwd=HERE.parents[1],
                         env={**os.environ, "PEV_ADDR": str(addr)})
    line = next((x for x in run.stdout.splitlines() if x.startswith("VALUES ")), None)
    assert line is not None, run.stdout + run.stderr
    stride = (RECORD.size + 8 + 7) & ~7  # the emitter's record and its header, rounded to 8
    assert line == f"VALUES [{6 * stride}]"
