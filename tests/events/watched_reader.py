"""Run under gdb by test_shared_words: a reader publishes its consumer position while a
hardware watchpoint reports every value the kernel could have read there.

Prints nothing; gdb is told where the word is by a SIGTRAP with the address in
``sys.argv[1]`` (a file), and the reader then publishes one new position.
"""

from __future__ import annotations

import os
import signal
import sys

from pybpfasm.events import RingBuffer
from pybpfasm.maps import MapSpec
from pybpfasm.sys import MapType, ffi
from tests.events.programs import RECORD, counter, emitter, run

with MapSpec(MapType.RINGBUF, max_entries=1 << 16).create() as rb, counter("seq") as seq, \
        counter("lost") as lost, emitter("ringbuf", rb, seq, lost) as prog, \
        RingBuffer(rb, RECORD, lost=lost) as reader:
    run(prog, 3)
    assert len(reader.read()) == 3  # the position is not 0 any more
    run(prog, 3)
    with open(sys.argv[1], "w") as f:
        f.write(str(int(ffi.cast("uintptr_t", ffi.from_buffer(reader._cons_view)))))
    os.kill(os.getpid(), signal.SIGTRAP)
    assert len(reader.read()) == 3
