"""Membership tests, char arrays compared with strings, and helper sizes the types know,
proven by programs the verifier accepts and whose results are checked."""

from __future__ import annotations

import os
import struct
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest

from pybpfasm.dsl import ArrayMap, Collection, Record, char, tracepoint, u64
from pybpfasm.dsl.types import Space, be16, u8
from pybpfasm.dsl.values import Ref, all_of, any_of
from pybpfasm.isa import Class, Mode, Size

from .harness import PacketFrame, run_packet_program

pytestmark = pytest.mark.kernel

M64 = (1 << 64) - 1
BIG = 1 << 40  # does not fit an immediate


def flag(frame: PacketFrame, k: int, cond) -> None:
    """Output slot *k* is 1 when *cond* holds, else 0."""
    out = frame.b.var(0)
    with frame.b.if_(cond):
        out.set(1)
    frame.output(k, out)


def test_in_matches_the_model():
    def body(frame: PacketFrame) -> None:
        x, small, port = frame.input(0), frame.input(1), frame.input(2)
        flag(frame, 0, x.in_(1, 6, 17, BIG))
        flag(frame, 1, small.in_(6, 17))          # a u8: 32-bit compares
        flag(frame, 2, port.in_(80, 443))          # big-endian: the ints are swapped at build time
        flag(frame, 3, ~x.in_(1, 6))
        flag(frame, 4, any_of(x == 2, small == 3, port == 22))
        flag(frame, 5, all_of(x > 1, small < 200, port != 80))

    def be(v: int) -> int:
        return int.from_bytes((v & 0xFFFF).to_bytes(2, "little"), "big")

    def model(x: int, small: int, port: int) -> list[int]:
        s, p = small & 0xFF, be(port)
        return [int(x in (1, 6, 17, BIG)), int(s in (6, 17)), int(p in (80, 443)), int(x not in (1, 6)),
                int(x == 2 or s == 3 or p == 22), int(x > 1 and s < 200 and p != 80)]

    swapped = {p: int.from_bytes(p.to_bytes(2, "big"), "little") for p in (22, 80, 443, 8080)}
    cases = [(x, s, p) for x in (0, 1, 2, 6, 17, 18, BIG, BIG + 1, M64)
             for s in (3, 6, 17, 0x106, 250) for p in swapped.values()]
    got = run_packet_program([u64, u8, be16], 6, body, cases)
    assert got == [model(*c) for c in cases]


def test_in_loads_its_value_once():
    frame = PacketFrame([u64], 1)
    field = Ref(frame.b, frame.data.reg, 0, u64, Space.PACKET)
    flag(frame, 0, field.in_(1, 2, 3, 4, 5))
    code = frame.finish(assemble=False)
    assert len([i for i in code if i.opcode == Class.LDX | Mode.MEM | Size.DW]) == 1
    assert len([i for i in code if i.is_jump and i.imm in (1, 2, 3, 4, 5)]) == 5


NAME = 16  # bytes of the char[16] the packet starts with
STRINGS = ("eth0", "lo", "", "abcdefghijklmnop", "abcdefghijklmno")
NAMES = (b"eth0", b"eth0\0garbage", b"eth00", b"eth", b"lo", b"", b"\0lo", b"abcdefghijklmnop",
         b"abcdefghijklmno", b"abcdefghijklmno\0", b"abcdefghijklmnoX")


def c_equal(name: bytes, s: str) -> bool:
    """strncmp(name, s, 16) == 0 for a char[16] holding *name*."""
    field = name.ljust(NAME, b"\0")[:NAME]
    return field.split(b"\0", 1)[0] == s.encode()


def name_inputs(name: bytes) -> list[int]:
    return list(struct.unpack("<2Q", name.ljust(NAME, b"\0")))


@pytest.mark.parametrize("where", ["packet", "stack"])
def test_char_array_equals_string(where: str):
    def body(frame: PacketFrame) -> None:
        b = frame.b
        name = Ref(b, frame.data.reg, 0, char[NAME], Space.PACKET)
        if where == "stack":
            copy = b.stack(char[NAME], "name copy")
            b.copy(copy, name)
            name = copy
        for k, s in enumerate(STRINGS):
            flag(frame, k, name == s)
        flag(frame, len(STRINGS), name != "eth0")
        flag(frame, len(STRINGS) + 1, name.in_("lo", "eth0"))

    cases = [name_inputs(n) for n in NAMES]
    got = run_packet_program([u64, u64], len(STRINGS) + 2, body, cases)
    expected = [[int(c_equal(n, s)) for s in STRINGS] + [int(not c_equal(n, "eth0")),
                                                          int(c_equal(n, "lo") or c_equal(n, "eth0"))]
                for n in NAMES]
    assert got == expected


# -- kernel memory and inferred sizes, on a tracepoint our own thread hits -----------------------
class Named(Record):
    pid: u64
    comm: char[16]


hits = ArrayMap(u64, 4, name="comm_hits")
last = ArrayMap(Named, 1, name="comm_last")


@tracepoint("syscalls", "sys_enter_getppid")
def comm_probe(b, ctx, name: str) -> None:
    task = b.get_current_task().cast("struct task_struct")
    with b.if_(task.comm == name):              # kernel memory: one probe-read, then word compares
        hits.increment(b, 0)
    comm = b.stack(char[16], "comm")
    b.get_current_comm(comm)                    # the size (16) comes from the type
    with b.if_(comm == name):
        hits.increment(b, 1)
    ev = b.stack(Named, "named")
    b.probe_read_kernel_str(ev.comm, task.comm)  # dst's size from the record field
    with b.if_(ev.comm.in_("nobody", name)):
        hits.increment(b, 2)
    with b.if_(comm == name[:-1]):              # a prefix is not equal: the NUL is compared too
        hits.increment(b, 3)
    with last.lookup(b, 0) as slot, b.if_(comm == name):
        b.get_current_comm(slot.comm)           # into map memory, the size from the record
        slot.pid = b.get_current_pid_tgid() >> 32


@contextmanager
def thread_name(name: str) -> Iterator[None]:
    path = f"/proc/self/task/{threading.get_native_id()}/comm"
    with open(path) as f:
        old = f.read().rstrip("\n")
    with open(path, "w") as f:
        f.write(name)
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(old)


@pytest.mark.skipif(os.geteuid() != 0, reason="attaching programs needs root")
def test_comm_compares_with_inferred_sizes():
    calls, name = 25, f"dslcmp{os.getpid() % 100000}"
    with Collection() as coll:
        coll.load(comm_probe, name)
        coll.attach(comm_probe)
        with thread_name(name):
            for _ in range(calls):
                os.getppid()
        counted = [coll.map(hits)[k] for k in range(4)]
        seen = coll.map(last)[0]
    assert counted == [calls, calls, calls, 0]
    assert (seen.comm, seen.pid) == (name, os.getpid())
