"""The process and socket tools on their kprobe paths in Debian 5.10, 6.1 and 6.12 guests,
every count exact (PYBPFASM_VM_FULL=1; the local kernel has no kprobes).

On each kernel, one guest runs every socket tool on each of its hooks against the scripted socket workload
(``tests/programs/sockguest.py``: the counts for the workload's process name must equal
those its declared calls give); another runs execsnoop's and opensnoop's ``--hook kprobe``
tests (``tests/programs/test_{execsnoop,opensnoop}.py -k kprobe``: the same exact events as
on the tracepoints).  Each tool's hooks note must name the path it took.  A third, in the
userland with the peers (bcc 0.26 with the guest kernel's headers, bpftrace 0.17), runs each
peer beside our tool on the same workload (``tests/vm/guest/procpeers.py``).
"""

from __future__ import annotations

import errno
import json
from collections import Counter

import pytest

from pybpfasm.lab.vm import kernels, qemu, userland
from pybpfasm.lab.vm.matrix import junit_outcomes
from pybpfasm.lab.workloads import processes, sockets
from tests.programs.test_execsnoop import expected as exec_expected
from tests.programs.test_opensnoop import expected as open_expected

from .conftest import full_lab

pytestmark = [pytest.mark.vm, full_lab]

SOCKET_TOOLS = ("sockstat", "sofamily", "soprotocol", "soconnect")
HOOKS = ("kprobe", "tracepoint")
#: what each socket tool's hooks note says on each path
NOTES = {
    ("sockstat", "kprobe"): "sends and receives at the __sock_sendmsg/sock_recvmsg kprobes",
    ("sockstat", "tracepoint"): "sends and receives at 6 send/recv syscall tracepoints",
    ("sofamily", "kprobe"): "hooks: kprobes and kretprobes on __x64_sys_connect, __x64_sys_accept, __x64_sys_accept4",
    ("sofamily", "tracepoint"): "hooks: syscalls:sys_enter_connect, sys_exit_accept and sys_exit_accept4",
    ("soprotocol", "kprobe"): "the book's security_socket_accept and security_socket_connect kprobes",
    ("soprotocol", "tracepoint"): "sys_enter_connect tracepoints, the socket read from the task's file table",
    ("soconnect", "kprobe"): "hooks: kprobes and kretprobes on __x64_sys_connect",
    ("soconnect", "tracepoint"): "hooks: syscalls:sys_enter_connect and sys_exit_connect tracepoints",
}
#: where a kernel cannot take a path, the one line the tool exits 2 with (Debian 6.12 inlines
#: __sock_sendmsg into the send syscalls)
REFUSED = {("6.12", "sockstat", "kprobe"): "cannot hook with kprobes here: no kernel function __sock_sendmsg"}
#: guest seconds: a Python start costs about 3 s under TCG, a tool's build far more
TIMEOUT = 900
SERIES = ("5.10", "6.1", "6.12")
#: kernels without bpf_loop (5.17+), which execsnoop and opensnoop -F need to walk paths
NO_BPF_LOOP = ("5.10",)


@pytest.fixture(scope="module", params=SERIES)
def guest_kernel(request, lab_host: None) -> kernels.Kernel:
    return kernels.debian(request.param)


@pytest.fixture(scope="module")
def socket_results(guest_kernel: kernels.Kernel) -> dict[tuple[str, str], dict]:
    pairs = [f"{tool}:{hook}" for tool in SOCKET_TOOLS for hook in HOOKS]
    result = qemu.run(guest_kernel, ["python3", "-m", "tests.programs.sockguest", *pairs],
                      qemu.GuestConfig(timeout=TIMEOUT))
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(pairs), result.stdout + result.stderr
    return {(r["tool"], r["hook"]): r for r in rows}


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("tool", SOCKET_TOOLS)
def test_socket_tool_counts_exactly(guest_kernel, socket_results, tool: str, hook: str) -> None:
    """Debian 6.1: sockstat's kprobes see the 3 sends at __sock_sendmsg (out of line there)
    and the 3 receives at sock_recvmsg; soprotocol's the book's security_socket_* kprobes;
    sofamily and soconnect kprobes on the syscall wrappers, the same counts as their
    tracepoints.  Debian 6.12: the same, but sockstat has no kprobe path (__sock_sendmsg is
    inlined) and says so in one line."""
    got = socket_results[(tool, hook)]
    refused = REFUSED.get((guest_kernel.series, tool, hook))
    if refused is not None:
        assert got["status"] == 2 and got["notes"] == [f"pybpfasm {tool}: {refused}"], got
        return
    assert (got["status"], got["exact"]) == (0, True), got
    assert got["counted"] == got["expected"]
    assert any(NOTES[(tool, hook)] in note for note in got["notes"]), got["notes"]


@pytest.fixture(scope="module")
def process_outcomes(guest_kernel: kernels.Kernel) -> dict[str, str]:
    if guest_kernel.series in NO_BPF_LOOP:
        pytest.skip("no bpf_loop before 5.17: test_process_tools_say_they_need_bpf_loop covers this kernel")
    result = qemu.run(guest_kernel, ["python3", "-m", "pytest", "--noconftest", "-q",
                                     "tests/programs/test_execsnoop.py", "tests/programs/test_opensnoop.py",
                                     "-k", "kprobe"],
                      qemu.GuestConfig(timeout=TIMEOUT))
    assert "junit.xml" in result.files, result.stdout + result.stderr
    return junit_outcomes(result.files["junit.xml"])


@pytest.mark.parametrize("test", [
    "tests.programs.test_execsnoop::test_kprobe_hook_sees_the_same_execs",
    "tests.programs.test_opensnoop::test_kprobe_hook_sees_the_same_opens",
])
def test_process_tool_kprobes_see_the_same_events(process_outcomes, test: str) -> None:
    """execsnoop's 9 execs (3 with awkward argv, execveat by fd and dirfd, relative, uid 65534,
    ENOENT, a killed shell) and opensnoop's 9 opens (-F: absolute), from kprobes and
    kretprobes on the syscall wrappers, equal to what the tracepoints give."""
    assert process_outcomes.get(test) == "passed", process_outcomes


def test_process_tools_say_they_need_bpf_loop(guest_kernel: kernels.Kernel) -> None:
    """Debian 5.10 has no bpf_loop: execsnoop and opensnoop -F (both walk paths with it) stop
    before loading anything, with one line that says so."""
    if guest_kernel.series not in NO_BPF_LOOP:
        pytest.skip("this kernel has bpf_loop")
    script = ("for t in 'execsnoop' 'opensnoop -F'; do python3 -m pybpfasm.cli $t --hook kprobe 2>&1; "
              "echo \"status $?\"; done")
    result = qemu.run(guest_kernel, ["sh", "-c", script], qemu.GuestConfig(timeout=TIMEOUT))
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and lines[1] == lines[3] == "status 1", result.stdout + result.stderr
    for line, tool in ((lines[0], "execsnoop"), (lines[2], "opensnoop")):
        assert line == f"pybpfasm {tool}: walking a path needs bpf_loop (Linux 5.17+), which this kernel does not have"


# -- peers on the same workload in the 6.1 guest (userland.with_peers: bcc, bpftrace, headers) --
@pytest.fixture(scope="module")
def peers(kernel_61: kernels.Kernel) -> dict[str, dict]:
    result = qemu.run(kernel_61, ["python3", "-m", "tests.vm.guest.procpeers"],
                      qemu.GuestConfig(timeout=1500, packages=userland.with_peers(kernel_61.release)))
    assert result.exit_code == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {r["pair"]: r for r in map(json.loads, result.stdout.splitlines())}


#: bcc 0.26's execsnoop reads each argument into 128 bytes (ARGSIZE)
BCC_ARGSIZE = 128


def test_bcc_execsnoop_beside_ours(peers) -> None:
    """bcc's execsnoop -x and ours -x on the exec workload.  They agree on every execve: the
    PID, PPID, comm after the exec and RET (-2 for the missing file).  They differ:

    * bcc hooks execve only (bcc#5556): the two execveat calls (through a descriptor, and
      under a dirfd) are not in its output; ours has both, with the file executed resolved;
    * bcc's ARGS is the filename as given then argv[1:], each cut to 128 bytes and joined
      with spaces (the 4 KiB argument is 128 A's; an empty argument is two spaces; spaces
      inside an argument cannot be told apart); ours keeps argv whole, as a list, and argv[0];
    * bcc shows no UID and no path; ours has the uid (65534 for the setuid child).
    """
    got = peers["execsnoop"]
    load, ours = got["load"], got["ours"]
    assert exec_expected(load, "pbg-exec") == [{k: v for k, v in r.items() if k != "time"} for r in ours]
    theirs = [line.split(None, 4) for line in got["peer"][1:]]
    want = [[e.comm or "pbg-exec", str(done["pid"]), str(load["pid"]), str(-e.errno),
             " ".join(a[:BCC_ARGSIZE] for a in (e.name, *e.args[1:]))]
            for e, done in zip(processes.execs(2), load["execs"]) if e.kind not in ("fd", "dirfd")]
    assert theirs == want
    assert len(ours) - len(theirs) == 2


def test_bcc_opensnoop_beside_ours(peers) -> None:
    """bcc's opensnoop and ours (no -F) on the open workload: the same 9 lines, open, openat
    and openat2 alike: PID, COMM, FD (-1 on failure), ERR and the name as given.  Ours adds
    the flags, the mode of a creating open and the errno's name (bcc's -e shows flags as octal)."""
    got = peers["opensnoop"]
    load, ours = got["load"], got["ours"]
    assert open_expected(load, "pbg-open", False) == [{k: v for k, v in r.items() if k != "time"} for r in ours]
    theirs = [line.split(None, 4) for line in got["peer"][1:]]
    assert theirs == [[str(r["pid"]), r["comm"], str(-1 if r["fd"] is None else r["fd"]),
                       str(0 if r["errno"] is None else getattr(errno, r["errno"])), r["path"]] for r in ours]
    assert len(theirs) == len(load["opens"]) == 9


def _book_map(lines: list[str]) -> dict[str, int]:
    """bpftrace's printed map lines ``@name[key]: N`` as {key: N}."""
    out = {}
    for line in lines:
        if line.startswith("@"):
            key, _, n = line.rpartition(": ")
            out[key[key.index("[") + 1:-1]] = int(n)
    return out


def test_the_books_sockstat_beside_ours(peers) -> None:
    """The book's sockstat probes (bpftrace, kprobes) and ours on the socket workload: the
    same accept4, bind, connect and socket counts and the same 3 sock_recvmsg.  The book's
    kprobe:sock_sendmsg counts nothing on Debian 6.1.0-57: since 6.1.56 the send syscalls call
    __sock_sendmsg, which ours probes (3 sends: sendto twice and sendmsg once)."""
    got = peers["sockstat"]
    theirs = _book_map(got["peer"])
    ours: Counter = Counter()
    for interval in got["ours"]:
        ours.update(interval["counts"])
    made = sockets.calls(3)
    base = {f"tracepoint:syscalls:sys_enter_{name}": made[name] for name in ("socket", "bind", "connect", "accept4")}
    assert theirs == {**base, "kprobe:sock_recvmsg": 3}
    assert dict(ours) == {**base, "kprobe:__sock_sendmsg": 3, "kprobe:sock_recvmsg": 3}


def test_the_books_soprotocol_beside_ours(peers) -> None:
    """The book's soprotocol (kprobes on security_socket_accept/connect) and ours: the book
    counts accepts and connects in one map, by the listening socket for an accept; ours counts
    them apart, and each protocol's accepts plus connects equal the book's count (TCP 6:
    2 accepts and 4 connects; TCPv6 2; UNIX-STREAM 2; UDP 1)."""
    got = peers["soprotocol"]
    theirs = _book_map(got["peer"])
    (summary,) = got["ours"]
    ours: Counter = Counter()
    for call in ("accept", "connect"):
        for row in summary[call]:
            ours[f"{row['comm']}, {row['protocol']}, {row['kernel_name']}"] += row["count"]
    assert theirs == dict(ours)
    comm = summary["connect"][0]["comm"]
    assert theirs == {f"{comm}, 6, TCP": 6, f"{comm}, 6, TCPv6": 2, f"{comm}, 0, UNIX-STREAM": 2, f"{comm}, 17, UDP": 1}
