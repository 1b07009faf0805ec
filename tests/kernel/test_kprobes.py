"""kprobes, kretprobes and kprobe_multi count exactly the calls the test makes."""

from __future__ import annotations

import errno
import os

import pytest

from pybpfasm.kernel import tracefs_path
from pybpfasm.link import attach_kprobe, attach_kprobe_multi, kprobe_multi_spec, kprobes_available
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import ProgType, SyscallError

from .conftest import LEGACY_PROBE, call_getpgid, count_this_process

CALLS = 40

needs_kprobes = pytest.mark.skipif(
    os.geteuid() != 0 or not kprobes_available(),
    reason="kprobes: not in this kernel (no kprobe PMU, no tracefs kprobe_events), covered in "
           "the VM lab (or not root: tracefs is closed)")


def _legacy_probes() -> list[str]:
    with open(tracefs_path("kprobe_events")) as f:
        return LEGACY_PROBE.findall(f.read())


@needs_kprobes
@pytest.mark.parametrize("via", ["pmu", "tracefs"])
@pytest.mark.parametrize("retprobe", [False, True])
def test_kprobe_counts_exactly_the_calls(syscall_function, count, via, retprobe):
    spec = ProgramSpec(ProgType.KPROBE, count_this_process(), maps={"count": count},
                       name="pbt_kprobe")
    with spec.load() as prog:
        with attach_kprobe(prog, syscall_function, retprobe=retprobe, via=via) as link:
            call_getpgid(CALLS)
            assert count[0] == CALLS
            if via == "tracefs":
                assert len(_legacy_probes()) == 1
        assert link.closed
        call_getpgid(5)
        assert count[0] == CALLS
    assert _legacy_probes() == []


@needs_kprobes
def test_kprobe_on_a_missing_function_is_one_clear_error(count):
    from pybpfasm.link import KprobeError

    spec = ProgramSpec(ProgType.KPROBE, count_this_process(), maps={"count": count})
    with spec.load() as prog, pytest.raises(KprobeError, match="no such kernel function"):
        attach_kprobe(prog, "pybpfasm_no_such_function")
    assert _legacy_probes() == []


@needs_kprobes
def test_kprobe_multi_counts_calls_of_every_function(syscall_function, count):
    spec = kprobe_multi_spec(count_this_process(), maps={"count": count}, name="pbt_kmulti")
    getsid = syscall_function.replace("getpgid", "getsid")
    try:
        prog = spec.load()
    except SyscallError as err:
        pytest.skip(f"kprobe_multi: this kernel refuses the program type ({err})")
    with prog:
        try:
            link = attach_kprobe_multi(prog, [syscall_function, getsid])
        except SyscallError as err:
            if err.errno in (errno.EOPNOTSUPP, errno.EINVAL, 524):
                pytest.skip(f"kprobe_multi: not in this kernel ({err})")
            raise
        with link:
            call_getpgid(CALLS)
            for _ in range(CALLS):
                os.getsid(0)
            assert count[0] == 2 * CALLS
