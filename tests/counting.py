"""The hand-assembled counting pieces the loader, link, events and kernel tests share.

Assembled from instructions, not the eDSL, so these tests do not depend on it.
"""

from __future__ import annotations

from pybpfasm.helpers import helper_id
from pybpfasm.isa import (
    R0,
    R1,
    R2,
    R10,
    Add,
    AtomicOp,
    Instruction,
    JEq,
    Mov,
    Size,
    atomic,
    call,
    ld_map_fd,
    store_imm,
)
from pybpfasm.maps import Map, MapSpec
from pybpfasm.sys import MapType


def counter(name: str = "count") -> Map:
    """A one-slot u64 array: the count a program increments."""
    return MapSpec(MapType.ARRAY, 4, 8, 1, name=name).create()


def slot(map_name: str = "count") -> list[Instruction]:
    """``r0 = &map[0]`` (clobbers r0-r5); goes to ``out`` if the lookup fails."""
    return [
        store_imm(R10, -4, 0, Size.W),
        ld_map_fd(R1, map_name),
        Mov.reg(R2, R10), Add.imm(R2, -4),
        call(helper_id("map_lookup_elem")),
        JEq.imm(R0, 0, "out"),
    ]


def increment(map_name: str = "count") -> list[Instruction]:
    """``map[0] += 1`` atomically (clobbers r0-r5); goes to ``out`` if the lookup fails."""
    return [*slot(map_name), Mov.imm(R1, 1), atomic(AtomicOp.ADD, R0, 0, R1, Size.DW)]
