"""Tests of kernel facilities the CI kernel may lack (kprobes, fentry/fexit, kprobe_multi).

Each skips with the reason when the running kernel answers that it lacks the
facility; the VM lab runs them on Debian kernels that have it
(``pybpfasm lab vm run --kernel 6.1 -- python3 -m pytest tests/kernel``).
Needs only the runtime dependencies and pytest: no bpftool in the guest.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace

import pytest

from pybpfasm.helpers import helper_id
from pybpfasm.isa import R0, JNe, Mov, Rsh, call, exit_
from pybpfasm.kernel import Kallsyms
from pybpfasm.maps import Map
from tests.counting import counter, increment


@pytest.fixture(scope="session", autouse=True)
def privileged() -> None:
    if os.geteuid() != 0:
        pytest.skip("attaching programs needs root")


@pytest.fixture(scope="session")
def syscall_function() -> str:
    """The kernel function behind getpgid(2) on this architecture (``__x64_sys_getpgid``).

    getpgid takes an argument, so its syscall wrapper is in BTF too (fentry needs that).
    """
    symbols = Kallsyms.load()
    for name in ("__x64_sys_getpgid", "__arm64_sys_getpgid", "__s390x_sys_getpgid",
                 "__riscv_sys_getpgid", "__se_sys_getpgid", "sys_getpgid"):
        if name in symbols:
            return name
    pytest.skip("no getpgid syscall function in kallsyms")


@pytest.fixture
def count() -> Map:
    with counter() as m:
        yield m


def count_this_process() -> list:
    """Instructions: if the current process is the test's, ``count[0] += 1``; return 0."""
    return [
        call(helper_id("get_current_pid_tgid")),
        Rsh.imm(R0, 32),
        JNe.imm(R0, os.getpid(), "out"),
        *increment(),
        replace(Mov.imm(R0, 0), symbol="out"),
        exit_(),
    ]


def call_getpgid(times: int) -> None:
    for _ in range(times):
        os.getpgid(0)


#: how a pybpfasm legacy kprobe shows in tracefs kprobe_events
LEGACY_PROBE = re.compile(r"^[pr]\d*:pybpfasm/pbk_", re.M)  # kretprobes show as r<maxactive>:
