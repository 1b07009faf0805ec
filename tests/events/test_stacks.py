"""Stack traces: kernel stacks symbolised from kallsyms, user stacks from /proc/PID/maps + ELF."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from pybpfasm.events import StackTraces
from pybpfasm.helpers import helper_id
from pybpfasm.isa import (
    R0,
    R1,
    R2,
    R3,
    R6,
    R7,
    R10,
    Add,
    JNe,
    JSLt,
    Mov,
    Rsh,
    Size,
    call,
    exit_,
    ld_map_fd,
    store_imm,
    store_mem,
)
from pybpfasm.link import attach_raw_tracepoint, attach_tracepoint
from pybpfasm.maps import MapSpec
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import MapType, ProgType

from .programs import counter

BPF_F_USER_STACK = 1 << 8
FRAME = re.compile(r"^[\w.]+\+0x[0-9a-f]+( \[\w+\])?$")


def _recorder(prog_type: ProgType, flags: int, tgid: int | None, stacks, last, name: str):
    """Stores ``bpf_get_stackid(ctx, stacks, flags) + 1`` in ``last[0]`` (for process ``tgid``)."""
    filter_ = [] if tgid is None else [
        call(helper_id("get_current_pid_tgid")), Rsh.imm(R0, 32), JNe.imm(R0, tgid, "out")]
    insns = [
        Mov.reg(R6, R1),
        *filter_,
        Mov.reg(R1, R6), ld_map_fd(R2, "stacks"), Mov.imm(R3, flags),
        call(helper_id("get_stackid")),
        JSLt.imm(R0, 0, "out"),
        Add.imm(R0, 1), Mov.reg(R7, R0),
        store_imm(R10, -4, 0, Size.W),
        ld_map_fd(R1, "last"), Mov.reg(R2, R10), Add.imm(R2, -4),
        call(helper_id("map_lookup_elem")),
        JNe.imm(R0, 0, "store"),
        replace(Mov.imm(R0, 0), symbol="out"),
        exit_(),
        replace(store_mem(R0, 0, R7, Size.DW), symbol="store"),
        Mov.imm(R0, 0),
        exit_(),
    ]
    return ProgramSpec(prog_type, insns, maps={"stacks": stacks, "last": last}, name=name).load()


@pytest.fixture
def stacks():
    with MapSpec(MapType.STACK_TRACE, 4, 8 * 127, 64, name="stacks").create() as m, \
            counter("last") as last:
        yield m, last


def test_kernel_stack_of_a_udp_drop(stacks):
    stack_map, last = stacks
    with _recorder(ProgType.RAW_TRACEPOINT, 0, None, stack_map, last, "pbt_kstack") as prog, \
            attach_raw_tracepoint(prog, "kfree_skb"):
        # one UDP drop in a fresh network namespace (the unshare'd child's own)
        send = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))"
        subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1"',
                        sys.executable, send], check=True)
    assert last[0], "no kfree_skb seen"
    frames = StackTraces(stack_map).kernel(last[0] - 1)
    assert frames and all(FRAME.match(f) for f in frames), frames
    assert any(f.startswith(("kfree_skb", "sk_skb_reason_drop")) for f in frames[:4]), frames


def test_user_stack_of_a_syscall(stacks):
    stack_map, last = stacks
    with _recorder(ProgType.TRACEPOINT, BPF_F_USER_STACK, os.getpid(), stack_map, last,
                   "pbt_ustack") as prog, attach_tracepoint(prog, "syscalls", "sys_enter_getppid"):
        os.getppid()
    assert last[0], "no getppid seen"
    frames = StackTraces(stack_map).user(last[0] - 1, os.getpid())
    assert "getppid" in frames[0] and "libc" in frames[0], frames
