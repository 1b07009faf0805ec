"""sofamily counts the workload's accepts and connects exactly, by process and address family."""

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
from pybpfasm.tools.common.sockets import family_name
from tests.programs.socktools import (
    bad_flag,
    json_lines,
    no_leftovers,
    unique_comm,
    workload_fixture,  # noqa: F401 - the workload fixture
)


def expected(comm: str, times: int = 1) -> dict[str, list[dict]]:
    def rows(families: list[int]) -> list[dict]:
        return sorted(({"comm": comm, "family": f, "name": socket.AddressFamily(f).name, "count": n * times}
                       for f, n in Counter(families).items()), key=lambda r: r["family"])

    return {"accept": rows([a[0] for a in ACCEPTS]), "connect": rows([c[0] for c in CONNECTS])}


def merged(summaries: list[dict]) -> dict[str, list[dict]]:
    """Interval summaries added up, rows sorted by family."""
    out = {}
    for name in ("accept", "connect"):
        counts: Counter = Counter()
        for summary in summaries:
            for row in summary[name]:
                counts[(row["comm"], row["family"], row["name"])] += row["count"]
        out[name] = sorted(({"comm": c, "family": f, "name": n, "count": k} for (c, f, n), k in counts.items()),
                           key=lambda r: r["family"])
    return out


def test_one_summary_at_exit_exactly(tool, workload):
    comm = unique_comm("pbt-sf")
    mine, other = workload(comm), workload(unique_comm("pbt-ot"))
    mon = tool("sofamily", "-c", comm, "--json")
    other.run()
    mine.run()
    summaries = mon.events()
    assert len(summaries) == 1 and list(summaries[0]) == ["accept", "connect"]
    assert merged(summaries) == expected(comm)


def test_every_interval_adds_up(tool, workload):
    comm = unique_comm("pbt-sf")
    first, second = workload(comm), workload(comm)
    mon = tool("sofamily", "-c", comm, "--json", "-i", "0.2")
    first.run()
    time.sleep(0.5)
    second.run()
    summaries = mon.events()
    assert len(summaries) >= 3
    assert merged(summaries) == expected(comm, times=2)


def test_pid_filter(tool, workload):
    comm = unique_comm("pbt-sf")
    mine, twin = workload(comm), workload(comm)
    mon = tool("sofamily", "-p", str(mine.pid), "--json")
    twin.run()
    mine.run()
    assert merged(mon.events()) == expected(comm)


def test_duration_prints_the_summary_once(tool, workload):
    comm = unique_comm("pbt-sf")
    mine = workload(comm)
    mon = tool("sofamily", "-c", comm, "--json", "--duration", "1.5")
    mine.run()
    code, out, err = mon.finish()
    assert code == 0, err
    assert merged(json_lines(out)) == expected(comm) and len(json_lines(out)) == 1


def test_text_is_the_books_maps(tool, workload):
    comm = unique_comm("pbt-sf")
    mine = workload(comm)
    mon = tool("sofamily", "-c", comm)
    mine.run()
    code, out, err = mon.stop(signal.SIGTERM)
    assert code == 0, err
    want = expected(comm)
    lines = [""]
    for name in ("accept", "connect"):
        rows = sorted(want[name], key=lambda r: (r["count"], str(r["family"])))
        lines += [f"@{name}[{comm}, {r['family']}, {r['name']}]: {r['count']}" for r in rows] + [""]
    assert out.split("\n") == lines
    assert "note: hooks: syscalls:sys_enter_connect, sys_exit_accept and sys_exit_accept4" in err


def test_an_accept_given_no_address_buffer_counts(tool, make_netns):
    """accept(fd, NULL, NULL): the family is the new socket's (the book reads the peer
    address buffer, so it misses these)."""
    comm = unique_comm("pbt-sf")
    code = ("import ctypes, socket, sys\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "libc.prctl(15, ctypes.c_char_p(sys.argv[1].encode()), 0, 0, 0)\n"
            "srv = socket.socket(socket.AF_INET6); srv.bind(('::1', 0)); srv.listen(1)\n"
            "socket.socket(socket.AF_INET6).connect(srv.getsockname()[:2])\n"
            "assert libc.accept(srv.fileno(), None, None) >= 0\n")
    mon = tool("sofamily", "-c", comm, "--json")
    subprocess.run(["ip", "netns", "exec", make_netns().name, sys.executable, "-c", code, comm], check=True)
    assert mon.events() == [{"accept": [{"comm": comm, "family": 10, "name": "AF_INET6", "count": 1}],
                             "connect": [{"comm": comm, "family": 10, "name": "AF_INET6", "count": 1}]}]


def test_a_process_name_cannot_forge_lines(tool):
    comm = "x\nFAKE\x1b[2J"
    code = ("import ctypes, socket, sys\n"
            "ctypes.CDLL(None).prctl(15, ctypes.c_char_p(sys.argv[1].encode()), 0, 0, 0)\n"
            "socket.socket(socket.AF_UNIX).connect_ex('\\0pbt-nobody-listens')\n")
    mon = tool("sofamily", "-c", comm)
    subprocess.run([sys.executable, "-c", code, comm], check=True)
    code, out, err = mon.stop()
    assert code == 0, err
    assert out.split("\n") == ["", "@connect[x\\x0aFAKE\\x1b[2J, 1, AF_UNIX]: 1", ""]


def test_every_family_has_the_hosts_name():
    for family in socket.AddressFamily:
        assert family_name(family.value) == socket.AddressFamily(family.value).name
    assert family_name(16) == "AF_NETLINK" and family_name(9999) == ""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_leftovers_after_any_exit(tool, sig):
    no_leftovers(tool, "sofamily", "sofam_", sig)


@pytest.mark.parametrize("args,message", [
    (["-i", "nan"], "number of seconds"),
    (["-p", "4194305"], "out of range"),
    (["-c", "x" * 16], "is not a process name"),
    (["--count", "3"], "unrecognized arguments"),
    (["--hook", "fentry"], "invalid choice: 'fentry'"),
    *([(["--hook", "kprobe"], "cannot hook with kprobes here: no kprobes in this kernel")]
      if not kprobes_available() else []),
])
def test_bad_flags(args, message):
    bad_flag("sofamily", args, message)
