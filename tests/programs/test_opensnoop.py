"""opensnoop against a scripted workload whose opens are known exactly (pybpfasm.lab.workloads.processes)."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys

import pytest

from pybpfasm.lab.workloads.processes import SYS_OPEN, Workload
from pybpfasm.link import kprobes_available
from pybpfasm.tools.common import openflags
from pybpfasm.tools.common.syscalls import wrapper
from tests.link.kernel_state import programs_named, settle
from tests.programs.procmon import file_tools

KEYS = ["time", "pid", "tid", "uid", "comm", "fd", "errno", "flags", "mode", "path"]
#: the workload's opens: 2 creating, 1 missing, the dirfd, 2 openat2 (one EXDEV), 2 relative, open()
COUNT = 8 + (SYS_OPEN is not None)

@pytest.fixture
def file_tool(tmp_path):
    with file_tools(tmp_path) as start:
        yield start


def expected(load: dict, comm: str, full: bool) -> list[dict]:
    """The open events of *load* as opensnoop reports them (time left out)."""
    return [{"pid": load["pid"], "tid": load["pid"], "uid": load["uid"], "comm": comm, "fd": o["fd"],
             "errno": errno.errorcode[o["errno"]] if o["errno"] else None,
             "flags": openflags.names(o["flags"]), "mode": o["mode"],
             "path": o["full"] if full else o["path"]} for o in load["opens"]]


def of_comm(rows: list[dict], comm: str, lost_ok: bool = False) -> list[dict]:
    """*comm*'s rows, time left out.  Nothing may be lost unless *lost_ok*: a monitor of every
    open in the system may fall behind a busy machine (and then the workload's own events
    must still all be there), and perf buffers count what the kernel could not send before
    the tool opened them (the frame attaches first; the workload starts after readiness)."""
    assert lost_ok or not [r for r in rows if "lost" in r]
    rows = [r for r in rows if "lost" not in r]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows if r["comm"] == comm]


def workload(tmp_path, comm: str) -> Workload:
    folder = tmp_path / "w"
    folder.mkdir()
    return Workload("open", comm, os.path.realpath(folder))


@pytest.mark.parametrize("buffer", ["ringbuf", "perf"])
@pytest.mark.parametrize("full", [False, True])
def test_every_open_exactly(file_tool, tmp_path, buffer, full):
    """Known flags and modes, a missing file, openat2 with RESOLVE_*, relative names under a
    dirfd and the working directory (absolute with -F), and open() itself."""
    comm = f"pbt-op{os.getpid() % 100000}"
    work = workload(tmp_path, comm)
    mon = file_tool("opensnoop", "--json", "--buffer", buffer, *(["-F"] if full else []))
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    rows = mon.events()  # every open in the system: see of_comm() on lost events
    assert [r for r in rows if "lost" not in r and list(r) != KEYS] == []
    got = of_comm(rows, comm, lost_ok=True)
    assert got == expected(load, comm, full)
    assert len(got) == COUNT and len(load["opens"]) == COUNT
    assert [o["call"] for o in load["opens"]].count("openat2") == 2


def test_kprobe_hook_sees_the_same_opens(file_tool, tmp_path):
    """--hook kprobe: the same events from kprobes on the syscall wrappers (run in the VM lab:
    ``pybpfasm lab vm run --kernel 6.1 -- python3 -m pytest --noconftest tests/programs/test_opensnoop.py -k kprobe``)."""
    if not kprobes_available():
        pytest.skip("kprobes: not in this kernel, covered in the VM lab")
    comm = f"pbt-kp{os.getpid() % 100000}"
    work = workload(tmp_path, comm)
    mon = file_tool("opensnoop", "--json", "-F", "-p", str(work.pid), "--hook", "kprobe")
    assert any(line.startswith(f"note: hooks: kprobes and kretprobes on {wrapper('open')}")
               for line in mon.stderr), mon.stderr
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    assert of_comm(mon.events(), comm) == expected(load, comm, True)


def _model(rows: list[dict], args: list[str]) -> list[dict]:
    """Each filter's semantics, in Python."""
    opts: dict[str, list[str]] = {}
    tokens = iter(args)
    for flag in tokens:
        opts.setdefault(flag, []).append("" if flag == "-x" else next(tokens))
    keep = []
    for r in rows:
        flags = openflags.value(r["flags"])
        if "-p" in opts and r["pid"] != int(opts["-p"][0]):
            continue
        if "-t" in opts and r["tid"] != int(opts["-t"][0]):
            continue
        if "-u" in opts and r["uid"] != int(opts["-u"][0]):
            continue
        if "-n" in opts and opts["-n"][0] not in r["comm"]:  # bcc: a substring
            continue
        if "-x" in opts and r["fd"] is not None:
            continue
        wanted = [f.upper() if f.upper().startswith("O_") else "O_" + f.upper() for f in opts.get("-f", [])]
        if wanted and not any(openflags.matches(flags, f) for f in wanted):  # any of them
            continue
        keep.append(r)
    return keep


def test_filters_match_the_model(file_tool, tmp_path):
    comm = f"pbt-of{os.getpid() % 100000}"
    work = workload(tmp_path, comm)
    pid = str(work.pid)
    own = ["-p", pid]  # kernel-filtered monitors: a dozen of them reading every open is too many
    filters = [["-p", pid], ["-t", pid], ["-n", comm[:6]], ["-x"], ["-u", "0", *own],
               ["-f", "O_WRONLY", *own], ["-f", "O_CREAT", "-f", "O_APPEND", *own],
               ["-f", "O_RDONLY", "-f", "directory", *own], ["-f", "O_RDONLY", "-x", *own],
               *([["-f", "O_NONBLOCK", *own]] if SYS_OPEN else [])]
    everything = file_tool("opensnoop", "--json")
    nobody = file_tool("opensnoop", "--json", "-u", "65534", "-p", pid)
    mons = [(args, file_tool("opensnoop", "--json", *args)) for args in filters]
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    seen = of_comm(everything.events(), comm, lost_ok=True)
    assert seen == expected(load, comm, False) and len(seen) == COUNT
    assert nobody.events() == []
    for args, mon in mons:
        want = _model(seen, args)
        assert want and (want != seen or args[0] in ("-p", "-t", "-u", "-n")), args
        rows = mon.events()
        if "-p" in args or "-t" in args:  # nothing but the workload's own opens
            assert {r["pid"] for r in rows if "lost" not in r} == {load["pid"]}, args
        assert of_comm(rows, comm, lost_ok=not {"-p", "-t"} & set(args)) == want, args


def test_text_columns(tool, tmp_path):
    comm = "pbt-otext"
    work = workload(tmp_path, comm)
    mon = tool("opensnoop", "-T", "-U", "-e", "-p", str(work.pid))
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    code, out, err = mon.stop()
    assert code == 0, err
    lines = [line for line in out.splitlines() if f" {comm} " in line or line.startswith("TIME")]
    assert lines[0] == "TIME(s)       UID   PID    COMM               FD ERR FLAGS    PATH"
    first, missing = load["opens"][0], load["opens"][2]
    assert re.fullmatch(rf"\d+\.\d{{6}} +0 +{work.pid} +{comm} +\d+ +0 {first['flags']:08o} "
                        + re.escape(first["path"]), lines[1]), lines
    assert re.fullmatch(rf"\d+\.\d{{6}} +0 +{work.pid} +{comm} +-1 +2 {missing['flags']:08o} "
                        + re.escape(missing["path"]), lines[3]), lines
    assert len(lines) == 1 + COUNT


def test_tid_column_and_duration(tool, tmp_path):
    work = workload(tmp_path, "pbt-otid")
    mon = tool("opensnoop", "-t", str(work.pid), "-d", "3")
    work.run()
    code, out, err = mon.finish()
    lines = out.splitlines()
    assert code == 0, err
    assert lines[0] == "TID    COMM               FD ERR PATH"
    assert len([line for line in lines if " pbt-otid " in line]) == COUNT


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_leftovers_after_any_exit(tool, sig):
    mon = tool("opensnoop", "--json", "-F")
    ids = {p["id"] for p in programs_named("on_open")}
    assert len(ids) >= 4, "the tool's programs are not loaded while it runs"
    code, _, err = mon.stop(sig)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0), err
    assert "Traceback" not in err
    assert settle(lambda: ids & {p["id"] for p in programs_named("on_open")}, set()) == set()


@pytest.mark.parametrize("args,message", [
    (["-f", "O_BOGUS"], "'O_BOGUS' is not an open flag"),
    (["-p", "x"], "is not a valid process id"),
    (["-t", "-1"], "out of range"),
    (["-u", "4294967296"], "out of range"),
    (["-d", "nan"], "number of seconds"),
    (["-d", "0"], "number of seconds"),
    (["--hook", "fentry"], "invalid choice: 'fentry'"),
    *([(["--hook", "kprobe"], "cannot hook with kprobes here: no kprobes in this kernel")]
      if not kprobes_available() else []),
])
def test_bad_flags_one_line_exit_2(args, message):
    proc = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "opensnoop", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_flag_names_come_from_the_os_module():
    """Every name is an os.O_* constant of that value; names() and value() invert each other."""
    for name, value in openflags.ALL.items():
        assert getattr(os, name) == value
    for flags in (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, os.O_RDWR | os.O_SYNC, os.O_TMPFILE | os.O_RDWR,
                  os.O_RDONLY | os.O_NONBLOCK | 0o100000):
        assert openflags.value(openflags.names(flags)) == flags
    assert openflags.names(os.O_RDWR | os.O_SYNC) == ["O_RDWR", "O_SYNC"]  # not O_DSYNC as well
    assert openflags.names(0o100000) == ["O_RDONLY", "0x8000"]  # O_LARGEFILE: 0 in Python's os
