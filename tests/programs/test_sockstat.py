"""sockstat counts the scripted workload's socket calls exactly, by probe, per interval."""

from __future__ import annotations

import signal
import time

import pytest

from pybpfasm.lab.workloads.sockets import calls
from pybpfasm.link import kprobes_available
from tests.programs.socktools import (
    bad_flag,
    json_lines,
    no_leftovers,
    unique_comm,
    workload_fixture,  # noqa: F401 - the workload fixture
)

PROBE = "tracepoint:syscalls:sys_enter_{}"


def expected(udp: int) -> dict[str, int]:
    return {PROBE.format(name): n for name, n in calls(udp).items()}


def totals(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        for probe, n in row["counts"].items():
            out[probe] = out.get(probe, 0) + n
    return out


def test_comm_filter_counts_exactly(tool, workload):
    comm = unique_comm("pbt-ss")
    mine, other = workload(comm, udp=5), workload(unique_comm("pbt-ot"), udp=2)
    mon = tool("sockstat", "-c", comm, "--json", "-i", "0.3")
    other.run()
    mine.run()
    time.sleep(0.4)
    rows = json_lines(mon.stop()[1])
    assert len(rows) >= 2 and all(set(r) == {"time", "counts"} for r in rows)
    assert totals(rows) == expected(5)


def test_pid_filter_counts_exactly(tool, workload):
    comm = unique_comm("pbt-ss")
    mine, twin = workload(comm, udp=3), workload(comm, udp=2)  # same name, another process
    mon = tool("sockstat", "-p", str(mine.pid), "--json", "-i", "0.3")
    twin.run()
    mine.run()
    rows = json_lines(mon.stop()[1])
    assert totals(rows) == expected(3)


def test_text_is_the_books_format(tool, workload):
    comm = unique_comm("pbt-ss")
    mine = workload(comm, udp=4)
    mon = tool("sockstat", "-c", comm, "-i", "30")
    mine.run()
    code, out, err = mon.stop()
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines[0]) == 8 and lines[0][2] == lines[0][5] == ":"
    assert lines[-1] == ""
    entries = [line.rsplit(": ", 1) for line in lines[1:-1]]
    assert {p[2:-1]: int(n) for p, n in entries} == expected(4)
    assert [int(n) for _, n in entries] == sorted(int(n) for _, n in entries)  # fewest first
    assert "note: hooks: 6 syscall tracepoints, sends and receives at 6 send/recv syscall " in err


def test_an_interval_without_calls_prints_the_time_only(tool, workload):
    mon = tool("sockstat", "-c", unique_comm("pbt-none"), "-i", "0.2", "--duration", "0.7")
    code, out, err = mon.finish()
    assert code == 0, err
    assert len(out.splitlines()) >= 3 and all(len(line) == 8 for line in out.splitlines())


def test_hook_tracepoint_is_what_auto_chose_here(tool, workload):
    if kprobes_available():
        pytest.skip("this kernel has kprobes: auto chooses them")
    comm = unique_comm("pbt-ss")
    mine = workload(comm, udp=2)
    mon = tool("sockstat", "-c", comm, "--json", "--hook", "tracepoint")
    mine.run()
    assert totals(json_lines(mon.stop()[1])) == expected(2)


def test_no_kprobes_here_is_one_line():
    if kprobes_available():
        pytest.skip("this kernel has kprobes")
    bad_flag("sockstat", ["--hook", "kprobe"], "cannot hook with kprobes here: no kprobes in this kernel")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_leftovers_after_any_exit(tool, sig):
    no_leftovers(tool, "sockstat", "ss_", sig)


@pytest.mark.parametrize("args,message", [
    (["-p", "12x"], "is not a valid process id"),
    (["-p", "-1"], "out of range"),
    (["-c", "a-name-of-16-byte"], "is not a process name"),
    (["-c", ""], "is not a process name"),
    (["-i", "0"], "number of seconds"),
    (["--bogus"], "unrecognized arguments"),
    (["--hook", "fentry"], "invalid choice: 'fentry'"),
])
def test_bad_flags(args, message):
    bad_flag("sockstat", args, message)
