"""soprotocol counts the workload's accepts and connects exactly, apart, by protocol and the
kernel's name for it, the socket read from the descriptor through the task's file table."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from pybpfasm.lab.workloads.sockets import ACCEPTS, CONNECTS
from pybpfasm.link import kprobes_available
from pybpfasm.tools.common.sockets import protocol_name
from tests.programs.socktools import (
    bad_flag,
    no_leftovers,
    unique_comm,
    workload_fixture,  # noqa: F401 - the workload fixture
)

NAMES = {0: "IPPROTO_IP", socket.IPPROTO_TCP: "IPPROTO_TCP", socket.IPPROTO_UDP: "IPPROTO_UDP"}


def _key(row: dict) -> tuple:
    return row["protocol"], row["kernel_name"]


def expected(comm: str, times: int = 1) -> dict[str, list[dict]]:
    def rows(calls: list[tuple[int, str]]) -> list[dict]:
        return sorted(({"comm": comm, "protocol": p, "name": NAMES[p], "kernel_name": k, "count": n * times}
                       for (p, k), n in Counter(calls).items()), key=_key)

    return {"accept": rows([(a[1], a[2]) for a in ACCEPTS]), "connect": rows([(c[1], c[2]) for c in CONNECTS])}


def merged(summaries: list[dict]) -> dict[str, list[dict]]:
    out = {}
    for name in ("accept", "connect"):
        counts: Counter = Counter()
        for summary in summaries:
            for row in summary[name]:
                counts[(row["comm"], row["protocol"], row["name"], row["kernel_name"])] += row["count"]
        out[name] = sorted(({"comm": c, "protocol": p, "name": n, "kernel_name": k, "count": v}
                            for (c, p, n, k), v in counts.items()), key=_key)
    return out


def test_accepts_and_connects_apart_exactly(tool, workload):
    comm = unique_comm("pbt-sp")
    mine, other = workload(comm), workload(unique_comm("pbt-ot"))
    mon = tool("soprotocol", "-c", comm, "--json")
    other.run()
    mine.run()
    summaries = mon.events()
    assert len(summaries) == 1
    assert all(list(r) == ["comm", "protocol", "name", "kernel_name", "count"]
               for rows in summaries[0].values() for r in rows)
    assert merged(summaries) == expected(comm)


def test_pid_filter_and_intervals(tool, workload):
    comm = unique_comm("pbt-sp")
    mine, twin = workload(comm), workload(comm)
    mon = tool("soprotocol", "-p", str(mine.pid), "--json", "-i", "0.2")
    twin.run()
    time.sleep(0.3)
    mine.run()
    summaries = mon.events()
    assert len(summaries) >= 2
    assert merged(summaries) == expected(comm)


def test_text_is_the_books_maps(tool, workload):
    comm = unique_comm("pbt-sp")
    mine = workload(comm)
    mon = tool("soprotocol", "-c", comm, "--duration", "1.5")
    mine.run()
    code, out, err = mon.finish()
    assert code == 0, err
    lines = [""]
    for name, rows in expected(comm).items():
        rows = sorted(rows, key=lambda r: (r["count"], [str(r["protocol"]), r["name"], r["kernel_name"]]))
        lines += [f"@{name}[{comm}, {r['protocol']}, {r['name']}, {r['kernel_name']}]: {r['count']}"
                  for r in rows] + [""]
    assert out.split("\n") == lines
    assert "socket read from the task's file table" in err


def test_non_socket_descriptors_are_not_counted(tool, make_netns, tmp_path):
    """connect() on a pipe, a regular file and closed fds (inside and beyond the file
    table) reaches no socket: nothing counts."""
    comm = unique_comm("pbt-sp")
    code = ("import ctypes, os, socket, sys\n"
            "ctypes.CDLL(None).prctl(15, ctypes.c_char_p(sys.argv[1].encode()), 0, 0, 0)\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "r, w = os.pipe()\n"
            "f = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT)\n"
            "addr = socket.inet_aton('127.0.0.1')\n"
            "sa = ctypes.create_string_buffer(b'\\x02\\x00\\x00\\x01' + addr + bytes(8))\n"
            "for fd in (r, w, f, 50, 999):\n"
            "    assert libc.connect(fd, sa, 16) == -1\n")
    mon = tool("soprotocol", "-c", comm, "--json")
    subprocess.run([sys.executable, "-c", code, comm, str(tmp_path / "file")], check=True)
    assert mon.events() == [{"accept": [], "connect": []}]


def test_protocol_names_are_the_hosts():
    assert protocol_name(0) == "IPPROTO_IP"  # not its alias IPPROTO_HOPOPTS
    assert protocol_name(socket.IPPROTO_TCP) == "IPPROTO_TCP"
    assert protocol_name(socket.IPPROTO_ICMPV6) == "IPPROTO_ICMPV6"
    assert protocol_name(9999) == ""


def test_no_kprobes_here_is_one_line():
    if kprobes_available():
        pytest.skip("this kernel has kprobes")
    bad_flag("soprotocol", ["--hook", "kprobe"], "cannot hook with kprobes here: no kprobes in this kernel")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_leftovers_after_any_exit(tool, sig):
    no_leftovers(tool, "soprotocol", "soproto_", sig)


@pytest.mark.parametrize("args,message", [
    (["-i", "-2"], "number of seconds"),
    (["-p", "0x10"], "is not a valid process id"),
    (["-c", "ab\u00e9" * 6], "is not a process name"),
    (["--hook", "tp_btf"], "invalid choice: 'tp_btf'"),
])
def test_bad_flags(args, message):
    bad_flag("soprotocol", args, message)
