"""The tool frame: shared options, output, lost accounting, signals, periodic ticks,
the program cache and the CLI's one error path, through small tools of its own
(``tests/programs/frametool.py``) and through dropmon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.link.kernel_state import settle

FRAMETOOL = "tests.programs.frametool"


class Caller:
    """A child process that calls getppid() when told to (its pid is known before it calls)."""

    CODE = ("import ctypes, os, sys\n"
            "name = sys.argv[1].encode()\n"
            "ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME\n"
            "for line in sys.stdin:\n"
            "    for _ in range(int(line)): os.getppid()\n"
            "    print('done', flush=True)\n")

    def __init__(self, comm: str = "pbt-caller") -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE, comm], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid

    def call(self, times: int) -> None:
        self.proc.stdin.write(f"{times}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture
def caller():
    made = []

    def make(comm: str = "pbt-caller") -> Caller:
        c = Caller(comm)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def frametool(tool, *args: str):
    return tool(*args, module=FRAMETOOL)


def test_json_events_count_and_readiness(tool, caller):
    c = caller()
    mon = frametool(tool, "calls", "--pid", str(c.pid), "--json", "--count", "3")
    c.call(5)
    code, out, err = mon.finish()
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert rows == [{"seq": i, "pid": c.pid, "comm": "pbt-caller"} for i in range(3)]


def test_text_header_and_escaped_comm(tool, caller):
    """A process name cannot forge lines or send escape codes (issue 12 item 7)."""
    c = caller("x\nFAKE\x1b[2J")
    mon = frametool(tool, "calls", "--pid", str(c.pid))
    c.call(2)
    settle(lambda: None, 0, timeout=0.3)
    code, out, err = mon.stop()
    assert code == 0, err
    assert out.splitlines() == ["SEQ PID COMM", f"0 {c.pid} x\\x0aFAKE\\x1b[2J",
                                f"1 {c.pid} x\\x0aFAKE\\x1b[2J"]


def test_log_file_gets_the_same_lines(tool, caller, tmp_path):
    log = tmp_path / "log"
    c = caller()
    mon = frametool(tool, "calls", "--pid", str(c.pid), "--json", "--count", "2", "--log-file", str(log))
    c.call(2)
    code, out, err = mon.finish()
    assert code == 0, err
    assert log.read_text() == out and len(out.splitlines()) == 2


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_log_file_refuses_symlinks_and_non_files(kind, tmp_path):
    """Root never follows a planted symlink or writes into a FIFO (issue 12 item 6)."""
    target = tmp_path / "root-only"
    target.write_text("secret\n")
    path = tmp_path / "log"
    if kind == "symlink":
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    proc = subprocess.run([sys.executable, "-m", FRAMETOOL, "calls", "--pid", "1", "--log-file", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--log-file" in proc.stderr
    assert target.read_text() == "secret\n"


@pytest.mark.parametrize("buffer", ["ringbuf", "perf"])
def test_printed_plus_lost_is_exact_with_the_reader_stopped(tool, caller, buffer):
    """Every event is printed or counted lost, also for perf buffers whose overflowing
    ring never gets another sample to carry PERF_RECORD_LOST (issue 12 item 1)."""
    c = caller()
    mon = frametool(tool, "calls", "--pid", str(c.pid), "--json", "--buffer", buffer)
    calls = 5000  # far more than a 16 KiB ring or one perf page per CPU holds
    mon.proc.send_signal(signal.SIGSTOP)
    try:
        c.call(calls)
    finally:
        mon.proc.send_signal(signal.SIGCONT)
    settle(lambda: None, 0, timeout=0.5)
    code, out, err = mon.stop()
    lines = [json.loads(line) for line in out.splitlines()]
    events = [e for e in lines if "lost" not in e]
    lost = sum(e["lost"] for e in lines if "lost" in e)
    assert code == 0, err
    assert 0 < len(events) < calls and lost > 0
    assert len(events) + lost == calls
    assert len({e["seq"] for e in events}) == len(events) <= calls
    assert f"Lost {lost} events" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_print_what_was_read_and_exit_0(tool, caller, sig):
    c = caller()
    mon = frametool(tool, "calls", "--pid", str(c.pid), "--json")
    c.call(4)
    time.sleep(0.3)
    code, out, err = mon.stop(sig)
    assert code == 0 and "Traceback" not in err, err
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [0, 1, 2, 3]


def test_periodic_ticks_add_up(tool, caller):
    c = caller()
    mon = frametool(tool, "counts", "--pid", str(c.pid), "--json", "-i", "0.2", "--duration", "1.5")
    c.call(7)
    time.sleep(0.3)
    c.call(5)
    code, out, err = mon.finish()
    ticks = [json.loads(line)["calls"] for line in out.splitlines()]
    assert code == 0, err
    assert sum(ticks) == 12 and len(ticks) >= 5


def test_periodic_text_has_a_time_line_per_interval(tool, caller):
    c = caller()
    mon = frametool(tool, "counts", "--pid", str(c.pid), "-i", "0.3")
    c.call(3)
    time.sleep(0.5)
    code, out, err = mon.stop()
    lines = out.splitlines()
    assert code == 0, err
    assert all(len(t) == 8 and t[2] == t[5] == ":" for t in lines[::2])
    assert sum(int(v) for v in lines[1::2]) == 3


@pytest.mark.parametrize("args,message", [
    (["--duration", "nan"], "number of seconds"),
    (["--duration", "-1"], "number of seconds"),
    (["--duration", "1e999"], "number of seconds"),
    (["--count", "0"], "out of range"),
    (["--pid", "\u0668\u0660"], "is not a valid process id"),
    (["--pid", "9" * 5000], "is not a valid process id"),
])
def test_bad_values_one_line_exit_2(args, message):
    """Range checks on every numeric option, ASCII digits only (issue 12 item 5)."""
    argv = [sys.executable, "-m", FRAMETOOL, "calls", "--pid", "1", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--netns", "-1"], "out of range"),
    (["--netns", str(2**32)], "out of range"),
    (["--dst-port", "\u0668\u0660"], "is not a valid port"),
    (["--ifname", "a/b"], "not an interface name"),
])
def test_dropmon_bad_values(args, message):
    proc = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "dropmon", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr


def test_dropmon_non_utf8_ifname_runs(tool):
    """A name that is not UTF-8 is still bytes the kernel could hold: filtered, no traceback."""
    mon = tool("dropmon", "--json", "--ifname", os.fsdecode(b"eth\xff"), "--duration", "0.5")
    code, out, err = mon.finish()
    assert code == 0 and out == "", err


@pytest.mark.parametrize("command", [
    ["dropmon", "--json", "--duration", "3"],
    ["btf", "struct", "iphdr"],
    ["features"],
])
def test_full_disk_is_one_line(command):
    """Output errors (ENOSPC on /dev/full) end in one line, exit 1 (issue 12 item 3)."""
    with open("/dev/full", "w") as full:
        proc = subprocess.Popen([sys.executable, "-m", "pybpfasm.cli", *command], stdout=full,
                                stderr=subprocess.PIPE, text=True)
        if command[0] == "dropmon":
            time.sleep(2)
            subprocess.run([sys.executable, "-c", "import socket; s = socket.socket(socket.AF_INET, "
                            "socket.SOCK_DGRAM); [s.sendto(b'x', ('127.0.0.1', 9)) for _ in range(3)]"])
        err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 1, err
    assert err.splitlines()[-1].endswith("No space left on device (writing the output)"), err
    assert "Traceback" not in err


def test_closed_stdout_is_one_line():
    proc = subprocess.run(f"{sys.executable} -m pybpfasm.cli features >&-", shell=True,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_tool_answers_to_the_name_of_the_script_it_replaces(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "multi-protocol-drop-monitor", "--help"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "--dst-port" in proc.stdout
    link = tmp_path / "multi-protocol-drop-monitor"
    link.symlink_to(Path(sys.executable).parent / "pybpfasm")
    proc = subprocess.run([str(link), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "--dst-port" in proc.stdout, proc.stderr


def test_help_lists_registered_tools():
    proc = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "--help"], capture_output=True,
                          text=True, timeout=30)
    assert "dropmon" in proc.stdout and "multi-protocol-drop-monitor (dropmon)" in proc.stdout
