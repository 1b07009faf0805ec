"""bpftool's xlated dumps of loaded programs read back through the parser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pybpfasm.isa import encode
from pybpfasm.text import parse

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to load programs"),
    pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool (test-only) is not installed"),
]

SOURCE = """
    r6 = r1
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = array ll
    call 1                       // inlined by the kernel: a map[id:] value and jumps
    if r0 == 0 goto 1f
    r1 = *(u64 *)(r0 + 0)
    lock *(u64 *)(r0 + 0) += r1
1:  r1 = hash ll
    r2 = r10; r2 += -4
    call 1                       // rewritten to __htab_map_lookup_elem
    call 5                       // ktime_get_ns, called by address
    call 7                       // get_prandom_u32, bpf_user_rnd_u32 in the kernel
    w2 = 0x12345678
    r3 = 0x1122334455667788 ll
    call sub
    r0 = 0
    exit
sub:
    r0 = 1
    exit
"""


def bpftool(*args: str) -> str:
    return subprocess.run(["bpftool", "prog", "dump", "xlated", *args], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def xlated(tmp_path_factory) -> tuple[int, bytes]:
    from pybpfasm.maps import MapSpec, MapType
    from pybpfasm.prog import ProgramSpec, ProgType

    with MapSpec(MapType.ARRAY, 4, 8, 4).create() as array, \
            MapSpec(MapType.HASH, 4, 8, 4).create() as hash_, \
            ProgramSpec(ProgType.SOCKET_FILTER, parse(SOURCE),
                        maps={"array": array, "hash": hash_}).load() as prog:
        prog_id = prog.info().id
        raw = tmp_path_factory.mktemp("xlated") / "prog.bin"
        bpftool("id", str(prog_id), "file", str(raw))
        yield prog_id, Path(raw).read_bytes()


def test_xlated_with_opcodes_reads_back_exactly(xlated) -> None:
    prog_id, data = xlated
    text = bpftool("id", str(prog_id), "opcodes")
    insns = parse(text, "xlated")
    assert encode(insns) == data
    texts = {i.source.line: i.internal for i in insns if i.internal}
    assert any("map by id" in why for why in texts.values())
    assert any("rewrote" in why for why in texts.values())
    assert insns[0].symbol == "main"


def test_xlated_text_alone(xlated) -> None:
    """Without the bytes, every instruction but the rewritten calls encodes as the kernel has it."""
    prog_id, data = xlated
    insns = parse(bpftool("id", str(prog_id)), "xlated")
    assert sum(i.slots for i in insns) * 8 == len(data)
    pos = 0
    for insn in insns:
        theirs = data[pos: pos + 8 * insn.slots]
        if not insn.is_call:
            assert encode([insn]) == theirs, insn
        pos += 8 * insn.slots
