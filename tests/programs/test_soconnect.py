"""soconnect reports exactly the workload's IPv4 and IPv6 connect() calls, each with its result."""

from __future__ import annotations

import errno
import os
import signal
import socket

import pytest

from pybpfasm.lab.workloads.sockets import CONNECTS
from pybpfasm.link import kprobes_available
from pybpfasm.tools.soconnect import BOOK_RESULTS, result
from tests.programs.socktools import (
    bad_flag,
    json_lines,
    no_leftovers,
    unique_comm,
    workload_fixture,  # noqa: F401 - the workload fixture
)

HEADER = "PID    PROCESS          FAM ADDRESS          PORT   LAT(us) RESULT"
KEYS = ["pid", "comm", "family", "address", "port", "latency_us", "errno", "result"]


def expected(pid: int, comm: str, addresses: dict) -> list[dict]:
    """The IP connects of the workload, in order, as rows without the latency."""
    rows = []
    for family, _, _, err, where in CONNECTS:
        if family in (socket.AF_INET, socket.AF_INET6):
            address, port = addresses[where]
            rows.append({"pid": pid, "comm": comm, "family": family, "address": address, "port": port,
                         "errno": errno.errorcode[err] if err else None, "result": result(err)})
    return rows


def without_latency(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "latency_us"} for row in rows]


def test_every_ip_connect_exactly(tool, workload):
    comm = unique_comm("pbt-sc")
    mine, other = workload(comm), workload(unique_comm("pbt-ot"))
    mon = tool("soconnect", "-c", comm, "--json")
    other.run()
    addresses = mine.run()
    rows = mon.events()
    assert all(list(row) == KEYS for row in rows)
    assert without_latency(rows) == expected(mine.pid, comm, addresses)
    assert [r["result"] for r in rows] == ["Success", "Connect refused", "Network unreachable",
                                           "In progress", "Success", "Success"]
    assert all(isinstance(r["latency_us"], int) and 0 <= r["latency_us"] < 10**6 for r in rows)


def test_pid_filter(tool, workload):
    comm = unique_comm("pbt-sc")
    mine, twin = workload(comm), workload(comm)
    mon = tool("soconnect", "-p", str(mine.pid), "--json")
    twin.run()
    addresses = mine.run()
    assert without_latency(mon.events()) == expected(mine.pid, comm, addresses)


def test_count_stops_after_n_connects(tool, workload):
    comm = unique_comm("pbt-sc")
    mine = workload(comm)
    mon = tool("soconnect", "-c", comm, "--json", "--count", "2")
    addresses = mine.run()
    code, out, err = mon.finish()
    assert code == 0, err
    assert without_latency(json_lines(out)) == expected(mine.pid, comm, addresses)[:2]


def test_text_has_the_books_columns(tool, workload):
    comm = unique_comm("pbt-sc")
    mine = workload(comm)
    mon = tool("soconnect", "-c", comm)
    addresses = mine.run()
    code, out, err = mon.stop()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == HEADER
    want = expected(mine.pid, comm, addresses)
    assert len(lines) == 1 + len(want)
    for line, row in zip(lines[1:], want):
        pid, name, family, address, port, latency, text = line.split(None, 6)
        assert (int(pid), name, int(family), address, int(port), text) == (
            row["pid"], comm, row["family"], row["address"], row["port"], row["result"])
        end = len(HEADER) - len(" RESULT")  # LAT(us) is right-aligned under its title
        assert line[:end].endswith(f" {latency}") and line[end] == " "
    assert "note: hooks: syscalls:sys_enter_connect and sys_exit_connect" in err


def test_results_are_the_books_then_the_c_librarys():
    assert result(0) == "Success"
    assert result(errno.ECONNREFUSED) == "Connect refused"
    assert result(errno.ETIMEDOUT) == "Timeout"
    assert result(errno.EINPROGRESS) == "In progress"
    for err in errno.errorcode:
        assert result(err) == BOOK_RESULTS.get(err, os.strerror(err))
    assert result(errno.EHOSTUNREACH) == os.strerror(errno.EHOSTUNREACH)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_leftovers_after_any_exit(tool, sig):
    no_leftovers(tool, "soconnect", "socon_", sig)


@pytest.mark.parametrize("args,message", [
    (["-p", "x"], "is not a valid process id"),
    (["-c", "far-too-long-a-name"], "is not a process name"),
    (["--count", "0"], "out of range"),
    (["-i", "1"], "unrecognized arguments"),
    (["--hook", "fentry"], "invalid choice: 'fentry'"),
    *([(["--hook", "kprobe"], "cannot hook with kprobes here: no kprobes in this kernel")]
      if not kprobes_available() else []),
])
def test_bad_flags(args, message):
    bad_flag("soconnect", args, message)
