"""SIGKILL of the lab leaves nothing once ``lab down`` has run: no process, BPF program,
map or link of the lab, no namespace. The monitor dies with the lab (PR_SET_PDEATHSIG);
``lab down`` stops any marked process that outlived its lab.

``PYBPFASM_LAB_LONG=1`` kills ``lab demo`` 20 times at random points instead of 3.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from pybpfasm.lab.netns import build, children
from pybpfasm.lab.netns.monitor import available
from pybpfasm.sys import Cmd, SyscallError, bpf_fd, new_attr

from .test_build import run_lab

pytestmark = pytest.mark.usefixtures("privileged")

RUNS = 20 if os.environ.get("PYBPFASM_LAB_LONG") == "1" else 3
#: the topology name the unit tests mark their processes with (no such topology is shipped)
MARK = "killtest"
#: fdinfo key -> (command that opens that kind of object by id, its by_id field)
KINDS = {
    "prog_id": (Cmd.PROG_GET_FD_BY_ID, "prog_id"),
    "map_id": (Cmd.MAP_GET_FD_BY_ID, "map_id"),
    "link_id": (Cmd.LINK_GET_FD_BY_ID, "link_id"),
}


def bpf_objects(pid: int) -> set[tuple[str, int]]:
    """(kind, id) of every BPF program, map and link ``pid`` holds an fd of."""
    found = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return found
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in KINDS:
                        found.add((key, int(value)))
        except OSError:
            continue
    return found


def exists(kind: str, object_id: int) -> bool:
    cmd, field = KINDS[kind]
    attr = new_attr()
    setattr(attr.by_id, field, object_id)
    try:
        bpf_fd(cmd, attr).close()
    except SyscallError as err:
        if err.errno == errno.ENOENT:
            return False
        raise
    return True


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_child_dies_with_its_sigkilled_parent():
    code = ("import subprocess, sys, time; from pybpfasm.lab.netns import children\n"
            f"child = children.popen(['sleep', '60'], {MARK!r})\n"
            "print(child.pid, flush=True); time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert children.leftovers(MARK) == [child]
    parent.kill()
    parent.wait()
    assert wait_until(lambda: not alive(child), 5), "the child outlived its parent"
    assert children.leftovers(MARK) == []


def test_a_child_whose_parent_died_before_it_was_set_up_dies_at_once():
    """The race PR_SET_PDEATHSIG leaves open: the parent gone between fork and prctl."""
    prctl = children._prctl()
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:  # the lab: forks the child, tells its pid, and dies before the child's prctl
        try:
            os.close(read)
            parent = os.getpid()
            child = os.fork()
            if child == 0:
                time.sleep(0.3)
                children._die_with(parent, prctl)
                os.execvp("sleep", ["sleep", "60"])
            os.write(write, f"{child}\n".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child = int(f.readline())
    os.waitpid(middle, 0)
    assert wait_until(lambda: not alive(child), 5), "the child outlived a parent that died first"


def test_down_stops_marked_leftovers_and_nothing_else():
    marked = subprocess.Popen(["sleep", "60"], env={**os.environ, children.MARKER: MARK}, start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, children.MARKER: MARK + "x"})
    try:
        done = run_lab("down", MARK)
        out, err = done.communicate(timeout=30)
        assert (done.returncode, out, err) == (0, f"removed pid {marked.pid}\n", "")
        assert marked.wait(5) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
        marked.kill()
        marked.wait()


@pytest.mark.skipif(not available("dropmon"), reason="no 'pybpfasm dropmon' in this tree")
@pytest.mark.parametrize("run", range(RUNS))
def test_sigkilled_demo_leaves_nothing_after_down(run):
    """Run 0 kills once the monitor holds its links; the others at random points (before,
    while and after the monitor starts: it attaches after about 2-3 s here)."""
    delay = random.Random(run).uniform(0.1, 6.0)
    build.down("drops")
    demo = run_lab("demo", "udp4-closed-port", "ip4-bad-checksum", "ip4-fragment-timeout")
    seen_pids: set[int] = set()
    seen_objects: set[tuple[str, int]] = set()
    deadline = time.monotonic() + (30 if run == 0 else delay)
    while time.monotonic() < deadline and demo.poll() is None:
        for pid in children.leftovers("drops"):
            seen_pids.add(pid)
            seen_objects |= bpf_objects(pid)
        if run == 0 and any(kind == "link_id" for kind, _ in seen_objects):
            break
        time.sleep(0.02)
    when = "once attached" if run == 0 else f"at {delay:.2f} s"
    if run == 0:
        assert any(kind == "link_id" for kind, _ in seen_objects), "the monitor never attached"
    demo.kill()
    demo.communicate()
    # the monitor dies with the lab, before and without 'lab down'
    assert wait_until(lambda: not any(map(alive, seen_pids)), 5), f"monitor outlived the lab (killed {when})"
    done = run_lab("down", "drops")
    _, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert children.leftovers("drops") == []
    assert build.namespaces_up("pbl-drops-") == []
    left = lambda: [o for o in seen_objects if exists(*o)]  # noqa: E731 - freed asynchronously
    assert wait_until(lambda: not left(), 5), f"left in the kernel (killed {when}): {left()}"
