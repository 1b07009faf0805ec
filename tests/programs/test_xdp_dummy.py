"""xdp-dummy: XDP_PASS on every frame, untouched (BPF_PROG_TEST_RUN), attached and detached
by device through pinned links, and the reason it exists, in the veth lab: a redirect into a
veth arrives only while the peer runs it (lab/netns/xdpcases.py, the dummy-* scenarios)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfasm.btf import BTF
from pybpfasm.dsl import Collection
from pybpfasm.tools import xdp_dummy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")
CLI = [sys.executable, "-m", "pybpfasm.cli", "xdp-dummy"]


@settings(max_examples=100, deadline=None)
@given(frame=st.binary(min_size=14, max_size=256))
def test_every_frame_passes_unchanged(frame: bytes) -> None:
    with Collection() as coll:
        run = coll.load(xdp_dummy.xdp_dummy).test_run(frame)
    assert (run.retval, run.data) == (BTF.kernel().enum("xdp_action")["XDP_PASS"], frame)


def _xdp_on(ns: str, dev: str) -> bool:
    shown = subprocess.run(["ip", "-n", ns, "link", "show", dev], capture_output=True, text=True,
                           check=True).stdout
    return re.search(r" xdp(generic)? ", shown) is not None


def test_attach_and_detach_by_device(make_netns):
    ns = make_netns().name
    subprocess.run(["ip", "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1"], check=True)
    run = lambda *a: subprocess.run([*CLI, *a, "--netns", ns], capture_output=True, text=True)  # noqa: E731
    try:
        _attach_and_detach(ns, run)
    finally:
        run("detach")


def _attach_and_detach(ns, run) -> None:
    assert run("attach", "d0").returncode == 0
    assert run("attach", "d1", "--mode", "skb").returncode == 0
    assert _xdp_on(ns, "d0") and _xdp_on(ns, "d1")
    again = run("attach", "d1", "d0")
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert run("detach", "d0").returncode == 0
    assert not _xdp_on(ns, "d0") and _xdp_on(ns, "d1")
    unknown = run("detach", "d0")
    assert unknown.returncode == 2 and "no XDP program of this tool" in unknown.stderr
    assert run("detach").returncode == 0
    assert not _xdp_on(ns, "d1")
    assert not os.path.exists("/sys/fs/bpf/pybpfasm/xdp-dummy")


def test_lab_redirects_arrive_only_with_it(privileged):
    from pybpfasm.lab.netns import xdpcases

    (case,) = [c for c in xdpcases.CASES if c.tool == "xdp-dummy"]
    for v in case.run([], lambda *_: None):
        assert v.ok, (v.scenario, v.expected, v.unexpected, v.problems)
    assert not os.path.exists("/sys/fs/bpf/pybpfasm")


def test_pins_of_a_deleted_namespace_are_removed_by_the_next_command(make_netns):
    """A namespace deleted with xdp-dummy attached takes its devices (and so the attachment)
    along; its pins go with the next command, in any namespace."""
    ns, other = make_netns(), make_netns()
    subprocess.run(["ip", "-n", ns.name, "link", "add", "d0", "type", "veth", "peer", "name", "d1"], check=True)
    assert subprocess.run([*CLI, "attach", "d0", "--netns", ns.name]).returncode == 0
    pins = f"/sys/fs/bpf/pybpfasm/xdp-dummy/netns-{ns.inum}"
    assert os.listdir(pins)
    subprocess.run(["ip", "netns", "del", ns.name], check=True)
    done = subprocess.run([*CLI, "detach", "--netns", other.name], capture_output=True, text=True)
    assert not os.path.exists(pins), done.stderr
