"""Programs that emit numbered records, run K times by BPF_PROG_TEST_RUN."""

from __future__ import annotations

import struct
from dataclasses import replace

from pybpfasm.helpers import helper_id
from pybpfasm.isa import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R10,
    Add,
    JEq,
    Mov,
    Size,
    call,
    exit_,
    ld_imm64,
    ld_map_fd,
    load_mem,
    store_mem,
)
from pybpfasm.maps import Map
from pybpfasm.prog import Program, ProgramSpec
from pybpfasm.sys import ProgType
from tests.counting import counter, increment, slot

__all__ = ["counter", "emitter", "run"]

#: the record: sequence number (u64) and a marker (u64)
RECORD = struct.Struct("=QQ")
MARKER = 0x5EB1A5EB1A
#: BPF_F_CURRENT_CPU for bpf_perf_event_output
CURRENT_CPU = 0xFFFF_FFFF
#: a minimal Ethernet frame for running XDP programs
PACKET = bytes(64)


def emitter(kind: str, events: Map, seq: Map, lost: Map) -> Program:
    """Each run writes ``RECORD(seq++, MARKER)`` to ``events``; failures go to ``lost[0]``.

    ``kind`` is ``ringbuf`` (bpf_ringbuf_output) or ``perf`` (bpf_perf_event_output).
    """
    if kind == "ringbuf":
        output = [ld_map_fd(R1, "events"), Mov.reg(R2, R10), Add.imm(R2, -24),
                  Mov.imm(R3, RECORD.size), Mov.imm(R4, 0), call(helper_id("ringbuf_output"))]
    else:
        output = [Mov.reg(R1, R6), ld_map_fd(R2, "events"), ld_imm64(R3, CURRENT_CPU),
                  Mov.reg(R4, R10), Add.imm(R4, -24), Mov.imm(R5, RECORD.size),
                  call(helper_id("perf_event_output"))]
    insns = [
        Mov.reg(R6, R1),
        *slot("seq"),
        load_mem(R1, R0, 0, Size.DW),  # r1 = seq++ (runs are sequential: no atomic
        Mov.reg(R2, R1), Add.imm(R2, 1),  # fetch-add needed, which kernels before 5.12 lack)
        store_mem(R0, 0, R2, Size.DW),
        store_mem(R10, -24, R1, Size.DW),
        ld_imm64(R1, MARKER),
        store_mem(R10, -16, R1, Size.DW),
        *output,
        JEq.imm(R0, 0, "out"),
        *increment("lost"),
        replace(Mov.imm(R0, 2), symbol="out"),  # XDP_PASS
        exit_(),
    ]
    maps = {"events": events, "seq": seq, "lost": lost}
    return ProgramSpec(ProgType.XDP, insns, maps=maps, name=f"pbt_emit_{kind}").load()


def run(prog: Program, times: int) -> None:
    """Run ``prog`` ``times`` times in the kernel."""
    prog.test_run(PACKET, repeat=times)
