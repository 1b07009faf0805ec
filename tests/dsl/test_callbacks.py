"""bpf_loop callbacks and program BTF: func_info for every function, line_info from Python lines."""

from __future__ import annotations

import pytest

from pybpfasm.btf import BTF
from pybpfasm.dsl import Builder, Record, u64
from pybpfasm.dsl.context import PacketContext, entry
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import ProgType


class Acc(Record):
    total: u64
    stop_at: u64


def _loop_program(stop_at: int) -> ProgramSpec:
    b = Builder("xdp")
    PacketContext(b, entry(b), "struct xdp_md")
    acc = b.stack(Acc)
    acc.total = 0
    acc.stop_at = stop_at

    def add(b, i, st):
        st.total = st.total + i  # MARK: callback body
        with b.if_(i == st.stop_at):
            b.return_(1)  # stop the loop

    runs = b.loop(10, add, acc)
    b.return_(acc.total * 100 + runs)
    return ProgramSpec(ProgType.XDP, b.assemble(), name="loop")


def _has_helper(name: str) -> bool:
    return f"BPF_FUNC_{name}" in BTF.kernel().enum("bpf_func_id")


@pytest.mark.skipif(not _has_helper("loop"), reason="bpf_loop arrived in 5.17")
@pytest.mark.parametrize("stop_at,expected", [(7, 28 * 100 + 8), (99, 45 * 100 + 10), (0, 1)])
def test_loop_runs_the_callback_until_it_stops(stop_at: int, expected: int) -> None:
    with _loop_program(stop_at).load() as prog:
        assert prog.test_run(bytes(64)).retval == expected


def test_functions_get_func_info_and_python_line_info() -> None:
    spec = _loop_program(3)
    assert spec.btf is not None
    assert len(spec.btf.func_info) == 2 * spec.btf.func_info_rec_size  # main and the callback
    with spec.load(log_level=2) as prog:
        assert "st.total = st.total + i  # MARK: callback body" in prog.log
        assert "test_callbacks.py" in prog.log
