"""The link probes answer what the kernel then does: each answer checked by a real attachment."""

from __future__ import annotations

import os
import subprocess

import pytest

from pybpfasm.isa import Mov, exit_
from pybpfasm.link import attach_tc, attach_tracepoint, probes
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import ProgType, SyscallError

TRIVIAL = [Mov.imm(0, 0), exit_()]


def test_perf_event_link_probe():
    with ProgramSpec(ProgType.TRACEPOINT, TRIVIAL, name="pbt_probe_tp").load() as prog:
        try:
            attach_tracepoint(prog, "skb", "kfree_skb", via="link").close()
            linked = True
        except SyscallError:
            linked = False
    assert probes.perf_event_link() == linked


@pytest.fixture
def netns():
    name = f"pbt-probe-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def test_tcx_link_probe(netns):
    with ProgramSpec(ProgType.SCHED_CLS, TRIVIAL, name="pbt_probe_tc").load() as prog:
        try:
            attach_tc(prog, "lo", netns=netns, via="tcx").close()
            linked = True
        except SyscallError:
            linked = False
    assert probes.tcx_link() == linked
