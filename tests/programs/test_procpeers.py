"""execsnoop and opensnoop beside their bpftrace peers (execsnoop.bt, opensnoop.bt of
bpftrace's tools) on the same scripted workload: where they agree, and each difference
pinned down with its reason."""

from __future__ import annotations

import errno
import os
import shutil

import pytest

from pybpfasm.lab.workloads.processes import SYS_OPEN, Workload
from tests.link.kernel_state import settle
from tests.programs.procmon import TOOLS, Bpftrace, file_tools

pytestmark = pytest.mark.skipif(shutil.which("bpftrace") is None or not os.path.exists(f"{TOOLS}/execsnoop.bt"),
                                reason="bpftrace and its tools are not installed (apt-get install bpftrace)")


def test_exec_peer(tmp_path):
    """execsnoop.bt prints every exec *attempt* at entry: no result (the ENOENT one is there
    without -x), no path, and join() ends the arguments at the first empty one."""
    work = Workload("exec", "pbt-peerx", "2")
    peer = Bpftrace("execsnoop.bt", tmp_path / "bt")
    with file_tools(tmp_path) as start:
        ours = start("execsnoop", "--json", "-P", str(work.pid))
        load = work.run()
        settle(lambda: None, 0, timeout=1.0)
        rows = ours.events()
    pids = {str(e["pid"]): e for e in load["execs"]}
    theirs = {f[1]: " ".join(f[2:]) for f in (line.split() for line in peer.lines()) if len(f) > 1 and f[1] in pids}
    assert sorted(theirs) == sorted(pids)  # every attempt, the failed one included
    assert sorted(str(r["pid"]) for r in rows) == sorted(p for p, e in pids.items() if e["kind"] != "missing")
    for pid, e in pids.items():
        args = e["args"][:e["args"].index("")] if "" in e["args"] else e["args"]
        assert theirs[pid] == " ".join(args), pid
    full = {str(r["pid"]): r["args"] for r in rows}
    assert all(full[p] == e["args"] for p, e in pids.items() if p in full)  # ours: all of argv


def test_open_peer(tmp_path):
    """opensnoop.bt traces open and openat, not openat2, and prints names as given: the same
    lines as ours without -F, less the two openat2 calls."""
    folder = tmp_path / "w"
    folder.mkdir()
    comm = "pbt-peero"
    work = Workload("open", comm, os.path.realpath(folder))
    peer = Bpftrace("opensnoop.bt", tmp_path / "bt")
    with file_tools(tmp_path) as start:
        ours = start("opensnoop", "--json", "-p", str(work.pid))
        load = work.run()
        settle(lambda: None, 0, timeout=1.0)
        rows = [r for r in ours.events() if r["comm"] == comm]
    theirs = [line.split(None, 4) for line in peer.lines() if f" {comm} " in line]
    same = [[str(r["pid"]), r["comm"], str(-1 if r["fd"] is None else r["fd"]),
             str(0 if r["errno"] is None else getattr(errno, r["errno"])),
             r["path"]] for r, o in zip(rows, load["opens"]) if o["call"] != "openat2"]
    assert len(rows) == 8 + (SYS_OPEN is not None) and len(theirs) == len(rows) - 2
    assert theirs == same
