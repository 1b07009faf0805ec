"""sofamily and soconnect beside the bpftrace book's sofamily.bt and soconnect.bt (tracepoint
scripts, so they run here) on the same scripted socket workload.  The book's scripts are
given as the book has them, filtered to the workload's process name, with its ``#include``
constants (AF_*, the errno numbers of soconnect's @err2str) written as numbers: bpftrace 0.17
cannot include kernel headers here.  The book's kprobe scripts (sockstat, soprotocol) run
beside ours in a guest (tests/vm/test_process_tools.py)."""

from __future__ import annotations

import shutil
import socket

import pytest

from pybpfasm.tools.soconnect import BOOK_RESULTS
from tests.programs.procmon import Bpftrace
from tests.programs.socktools import unique_comm, workload_fixture  # noqa: F401 - the workload fixture

pytestmark = pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")

#: the book's @fam2str: four families
BOOK_FAMILIES = ("AF_UNSPEC", "AF_UNIX", "AF_INET", "AF_INET6")

SOFAMILY = """BEGIN { printf("Tracing socket connect/accepts. Ctrl-C to end.\\n\\n"); FAMILIES }
tracepoint:syscalls:sys_enter_connect /comm == "COMM"/
{ @connect[comm, args->uservaddr->sa_family, @fam2str[args->uservaddr->sa_family]] = count(); }
tracepoint:syscalls:sys_enter_accept, tracepoint:syscalls:sys_enter_accept4 /comm == "COMM"/
{ @sockaddr[tid] = args->upeer_sockaddr; }
tracepoint:syscalls:sys_exit_accept, tracepoint:syscalls:sys_exit_accept4 /@sockaddr[tid]/
{ if (args->ret > 0) { $sa = (struct sockaddr *)@sockaddr[tid];
    @accept[comm, $sa->sa_family, @fam2str[$sa->sa_family]] = count(); }
  delete(@sockaddr[tid]); }
END { clear(@sockaddr); clear(@fam2str); }
"""

SOCONNECT = """BEGIN { printf("Tracing IP connect() calls. Ctrl-C to end.\\n");
  printf("%-6s %-16s %-3s %-16s %-5s %8s %s\\n", "PID", "PROCESS", "FAM", "ADDRESS", "PORT", "LAT(us)", "RESULT");
  RESULTS }
tracepoint:syscalls:sys_enter_connect
/comm == "COMM" && (args->uservaddr->sa_family == FAM_INET || args->uservaddr->sa_family == FAM_INET6)/
{ @sockaddr[tid] = args->uservaddr; @start[tid] = nsecs; }
tracepoint:syscalls:sys_exit_connect /@start[tid]/
{ $dur_us = (nsecs - @start[tid]) / 1000;
  printf("%-6d %-16s %-3d ", pid, comm, @sockaddr[tid]->sa_family);
  if (@sockaddr[tid]->sa_family == FAM_INET) {
    $s = (struct sockaddr_in *)@sockaddr[tid];
    $port = ($s->sin_port >> 8) | (($s->sin_port << 8) & 0xff00);
    printf("%-16s %-5d %8d %s\\n", ntop(FAM_INET, $s->sin_addr.s_addr), $port, $dur_us, @err2str[- args->ret]);
  } else {
    $s6 = (struct sockaddr_in6 *)@sockaddr[tid];
    $port = ($s6->sin6_port >> 8) | (($s6->sin6_port << 8) & 0xff00);
    printf("%-16s %-5d %8d %s\\n", ntop(FAM_INET6, $s6->sin6_addr.in6_u.u6_addr8), $port, $dur_us, @err2str[- args->ret]);
  }
  delete(@sockaddr[tid]); delete(@start[tid]); }
END { clear(@start); clear(@err2str); clear(@sockaddr); }
"""


def book(script: str, comm: str, path) -> Bpftrace:
    families = " ".join(f'@fam2str[{int(getattr(socket, n))}] = "{n}";' for n in BOOK_FAMILIES)
    results = " ".join(f'@err2str[{err}] = "{text}";' for err, text in BOOK_RESULTS.items())
    text = (script.replace("FAMILIES", families).replace("RESULTS", results).replace("COMM", comm)
            .replace("FAM_INET6", str(int(socket.AF_INET6))).replace("FAM_INET", str(int(socket.AF_INET))))
    path.write_text(text)
    return Bpftrace(str(path), path.with_suffix(".out"))


def beside(tool, workload, path, name: str, script: str) -> tuple[list[str], list[str]]:
    """Our *name* (filtered to a fresh process name) and the book's *script* around one run of
    the socket workload: (the book's lines, ours)."""
    comm = unique_comm(f"pbt-{name[2:5]}")
    work = workload(comm, udp=3)
    peer = book(script, comm, path / f"{name}.bt")
    mon = tool(name, "-c", comm)
    work.run()
    code, out, err = mon.stop()
    assert code == 0, err
    return peer.lines(), out.splitlines()


def map_lines(lines: list[str]) -> list[str]:
    return sorted(line for line in lines if line.startswith("@"))


def test_sofamily_and_the_book_print_the_same_counts(tool, workload, tmp_path):
    """The same ``@accept[COMM, FAM, AF_NAME]: N`` and ``@connect[...]`` lines: 2 AF_INET, one
    AF_INET6 and one AF_UNIX accept; 5 AF_INET, one AF_INET6 and one AF_UNIX connect.  They
    differ only where the workload does not go: the book knows four family names (ours every
    one Python's socket module has) and misses an accept given no address buffer (ours counts
    the socket accept returns)."""
    theirs, ours = map(map_lines, beside(tool, workload, tmp_path, "sofamily", SOFAMILY))
    assert ours == theirs
    assert sum(int(line.rsplit(": ", 1)[1]) for line in ours) == 4 + 7


def test_soconnect_and_the_book_print_the_same_lines(tool, workload, tmp_path):
    """The same PID, PROCESS, FAM, ADDRESS, PORT and RESULT for the 6 IP connects (listening,
    refused, unreachable, in progress, IPv6, UDP); only the latency, measured by each, differs.
    The book reads the address back from user memory at exit, ours copies it at entry: the
    same bytes here, as the workload never changes them during the call."""
    def fields(lines: list[str]) -> list[list[str]]:
        rows = [line.split(None, 6) for line in lines if line[:1].isdigit()]  # not the banner, header
        return [row[:5] + row[6:] for row in rows]

    theirs, ours = map(fields, beside(tool, workload, tmp_path, "soconnect", SOCONNECT))
    assert ours == theirs
    assert len(ours) == 6
