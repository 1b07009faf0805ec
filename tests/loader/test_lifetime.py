"""Every kernel object is owned: opening and closing many leaves the fd table as it was."""

from __future__ import annotations

import gc

from pybpfasm.isa import Mov, exit_
from pybpfasm.maps import MapSpec
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import MapType, ProgType

from .conftest import open_fds

COUNT = 10_000


def test_ten_thousand_maps_and_programs_leave_no_fd() -> None:
    gc.collect()  # objects earlier tests dropped would otherwise close their fds mid-count
    before = open_fds()
    map_spec = MapSpec(MapType.ARRAY, 4, 4, 1)
    prog_spec = ProgramSpec(ProgType.SOCKET_FILTER, [Mov.imm(0, 0), exit_()])
    for i in range(COUNT):
        with map_spec.create() as m, prog_spec.load() as p:
            m[0] = i
            assert p.fileno() > 0
    assert open_fds() == before
    # the __del__ safety net: objects dropped without close() release their fds too
    for _ in range(100):
        map_spec.create()
        prog_spec.load()
    gc.collect()
    assert open_fds() == before
