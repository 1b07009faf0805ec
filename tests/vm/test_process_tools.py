"""The process and socket tools on their kprobe paths in a Debian guest, every count exact
(PYBPFASM_VM_FULL=1; the local kernel has no kprobes).

One guest runs every socket tool on each of its hooks against the scripted socket workload
(``tests/programs/sockguest.py``: the counts for the workload's process name must equal
those its declared calls give); another runs execsnoop's and opensnoop's ``--hook kprobe``
tests (``tests/programs/test_{execsnoop,opensnoop}.py -k kprobe``: the same exact events as
on the tracepoints).  Each tool's hooks note must name the path it took.
"""

from __future__ import annotations

import json

import pytest

from pybpfasm.lab.vm import kernels, qemu
from pybpfasm.lab.vm.matrix import junit_outcomes

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
#: guest seconds: a Python start costs about 3 s under TCG, a tool's build far more
TIMEOUT = 900


@pytest.fixture(scope="module")
def socket_results(kernel_61: kernels.Kernel) -> dict[tuple[str, str], dict]:
    pairs = [f"{tool}:{hook}" for tool in SOCKET_TOOLS for hook in HOOKS]
    result = qemu.run(kernel_61, ["python3", "-m", "tests.programs.sockguest", *pairs],
                      qemu.GuestConfig(timeout=TIMEOUT))
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(pairs), result.stdout + result.stderr
    return {(r["tool"], r["hook"]): r for r in rows}


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("tool", SOCKET_TOOLS)
def test_socket_tool_counts_exactly_in_a_61_guest(socket_results, tool: str, hook: str) -> None:
    """Debian 6.1: sockstat's kprobes see the 3 sends at __sock_sendmsg (out of line there)
    and the 3 receives at sock_recvmsg; soprotocol's the book's security_socket_* kprobes;
    sofamily and soconnect kprobes on the syscall wrappers, the same counts as their tracepoints."""
    got = socket_results[(tool, hook)]
    assert (got["status"], got["exact"]) == (0, True), got
    assert got["counted"] == got["expected"]
    assert any(NOTES[(tool, hook)] in note for note in got["notes"]), got["notes"]


@pytest.fixture(scope="module")
def process_outcomes(kernel_61: kernels.Kernel) -> dict[str, str]:
    result = qemu.run(kernel_61, ["python3", "-m", "pytest", "--noconftest", "-q", "tests/programs/test_execsnoop.py",
                                  "tests/programs/test_opensnoop.py", "-k", "kprobe"],
                      qemu.GuestConfig(timeout=TIMEOUT))
    assert "junit.xml" in result.files, result.stdout + result.stderr
    return junit_outcomes(result.files["junit.xml"])


@pytest.mark.parametrize("test", [
    "tests.programs.test_execsnoop::test_kprobe_hook_sees_the_same_execs",
    "tests.programs.test_opensnoop::test_kprobe_hook_sees_the_same_opens",
])
def test_process_tool_kprobes_see_the_same_events_in_a_61_guest(process_outcomes, test: str) -> None:
    """execsnoop's 9 execs (3 with awkward argv, execveat by fd and dirfd, relative, uid 65534,
    ENOENT, a killed shell) and opensnoop's 9 opens (-F: absolute), from kprobes and
    kretprobes on the syscall wrappers, equal to what the tracepoints give."""
    assert process_outcomes.get(test) == "passed", process_outcomes
