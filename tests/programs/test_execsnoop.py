"""execsnoop against a scripted workload whose execs are known exactly (pybpfasm.lab.workloads.processes)."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import sys

import pytest

from pybpfasm.lab.workloads.processes import TRUE, Workload, execs
from pybpfasm.link import kprobes_available
from pybpfasm.tools.common.syscalls import wrapper
from tests.link.kernel_state import programs_named, settle
from tests.programs.procmon import file_tools

K = 3
KEYS = ["time", "pid", "ppid", "uid", "comm", "ret", "path", "args"]

@pytest.fixture
def file_tool(tmp_path):
    with file_tools(tmp_path) as start:
        yield start


def expected(load: dict, comm: str) -> list[dict]:
    """The exec events of *load*, as execsnoop -x reports them (time left out)."""
    return [{"pid": done["pid"], "ppid": load["pid"], "uid": e.uid if e.uid is not None else load["uid"],
             "comm": e.comm or comm, "ret": -e.errno, "path": e.path or e.name, "args": list(e.args)}
            for e, done in zip(execs(len(load["execs"]) - len(execs(0))), load["execs"])]


def of_load(rows: list[dict], load: dict) -> list[dict]:
    """The exec rows (not exits) of *load*'s children, time left out, in pid order."""
    assert not [r for r in rows if "lost" in r]
    mine = [{k: v for k, v in r.items() if k != "time"} for r in rows if r["ppid"] == load["pid"] and "ret" in r]
    return sorted(mine, key=lambda r: r["pid"])


def start(file_tool, *args: str):
    return file_tool("execsnoop", "--json", *args)


@pytest.mark.parametrize("buffer", ["ringbuf", "perf"])
def test_every_exec_exactly(file_tool, buffer):
    """K execs with spaces, an empty and a 4 KiB argument; execveat through a descriptor and
    under a dirfd; a relative name; another user; a missing file (with -x); a killed shell."""
    comm = f"pbt-ex{os.getpid() % 100000}"
    work = Workload("exec", comm, str(K))
    # perf buffers hold 1024 records a CPU: with them, only the workload's children (-P), so
    # that another process's exec burst on a loaded machine cannot crowd its records out
    mon = start(file_tool, "-x", "--buffer", buffer, *(["-P", str(work.pid)] if buffer == "perf" else []))
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    # perf buffers: what the kernel could not send before the tool opened them is counted
    # lost (the frame attaches first); the workload starts after readiness
    rows = [r for r in mon.events() if buffer == "ringbuf" or "lost" not in r]
    assert all(list(r) == KEYS for r in rows if "ret" in r)
    assert of_load(rows, load) == expected(load, comm)
    assert len(of_load(rows, load)) == K + 6


def test_kprobe_hook_sees_the_same_execs(file_tool):
    """--hook kprobe: the same events from kprobes on the syscall wrappers (run in the VM lab:
    ``pybpfasm lab vm run --kernel 6.1 -- python3 -m pytest --noconftest tests/programs/test_execsnoop.py -k kprobe``)."""
    if not kprobes_available():
        pytest.skip("kprobes: not in this kernel, covered in the VM lab")
    comm = f"pbt-kp{os.getpid() % 100000}"
    work = Workload("exec", comm, str(K))
    mon = start(file_tool, "-x", "--hook", "kprobe")
    assert any(line.startswith(f"note: hooks: kprobes and kretprobes on {wrapper('execve')}")
               for line in mon.stderr), mon.stderr
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    assert of_load(mon.events(), load) == expected(load, comm)


def test_failed_execs_need_x(file_tool):
    comm = f"pbt-ex{os.getpid() % 100000}"
    work = Workload("exec", comm, "1")
    mon = start(file_tool)
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    got = of_load(mon.events(), load)
    assert got == [e for e in expected(load, comm) if e["ret"] == 0] and len(got) == 6


def test_exit_lines(file_tool):
    """--exit: one line per traced process that exits, with its code or signal and lifetime."""
    work = Workload("exec", "pbt-exit", "2")
    mon = start(file_tool, "--exit")
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    exits = [r for r in mon.events() if "exit" in r and r["ppid"] == load["pid"]]
    ok = {e["pid"] for e in load["execs"] if e["kind"] not in ("missing", "killed")}
    killed = {e["pid"] for e in load["execs"] if e["kind"] == "killed"}
    assert sorted(r["pid"] for r in exits) == sorted(ok | killed)
    for r in exits:
        assert list(r) == ["time", "pid", "ppid", "uid", "comm", "exit", "signal", "lifetime"]
        assert (r["exit"], r["signal"]) == ((None, "SIGKILL") if r["pid"] in killed else (0, None))
        assert 0 <= r["lifetime"] < 10


def _model(rows: list[dict], args: list[str]) -> list[dict]:
    """What each filter keeps, in Python (bcc's semantics: -n/-l are regular expressions that
    -l matches against the arguments read; '...' marks arguments left unread)."""
    opts = dict(zip(args[::2], args[1::2]))
    limit = int(opts.get("--max-args", 10**6))
    out = []
    for r in rows:
        read = r["args"][:limit]
        uid = opts.get("-u", "")
        if uid and r["uid"] != (int(uid) if uid.isdigit() else pwd.getpwnam(uid).pw_uid):
            continue
        if "-n" in opts and not re.search(opts["-n"], r["comm"]):
            continue
        if "-l" in opts and not re.search(opts["-l"], " ".join(read)):
            continue
        out.append({**r, "args": read + (["..."] if len(r["args"]) > limit else [])})
    return out


FILTERS = [["-u", "65534"], ["-u", "nobody"], ["-n", "^tr"], ["-n", "pbt-f"], ["-l", r"k=1$|through"], ["--max-args", "2"],
           ["--max-args", "2", "-l", "spaces"], ["-u", "0", "-n", "sh"]]


def test_filters_match_the_model(file_tool):
    work = Workload("exec", "pbt-filt", str(K))
    everything = start(file_tool, "-x")
    by_parent = start(file_tool, "-x", "-P", str(work.pid))
    filtered = [(args, start(file_tool, "-x", *args)) for args in FILTERS]
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    seen = of_load(everything.events(), load)
    assert len(seen) == K + 6
    children = by_parent.events()
    assert sorted(({k: v for k, v in r.items() if k != "time"} for r in children),
                  key=lambda r: r["pid"]) == seen  # nothing but the workload's children
    for args, mon in filtered:
        want = _model(seen, args)
        assert want, args  # every filter keeps something of the workload...
        assert want != seen or args[0] == "--max-args", args  # ...and leaves something out
        assert of_load(mon.events(), load) == want, args


def test_text_columns(tool):
    work = Workload("exec", "pbt-text", "1")
    mon = tool("execsnoop", "-x", "-q", "-T", "-U", "-P", str(work.pid))
    load = work.run()
    settle(lambda: None, 0, timeout=0.5)
    code, out, err = mon.stop()
    lines = out.splitlines()
    assert code == 0, err
    assert lines[0] == "TIME     UID   PCOMM            PID     PPID    RET ARGS"
    first = load["execs"][0]
    quoted = " ".join('"' + a + '"' for a in first["args"])
    pattern = rf"\d\d:\d\d:\d\d 0     true +{first['pid']} +{load['pid']} +0 "
    assert any(re.fullmatch(pattern + re.escape(quoted), line) for line in lines), lines
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d 0     pbt-text +\d+ +\d+ +-2 \"prog\" \"missing\"", line)
               for line in lines), lines
    assert len(lines) == 1 + 1 + 6


def test_timestamp_column(tool):
    work = Workload("exec", "pbt-ts", "1")
    mon = tool("execsnoop", "-t", "-P", str(work.pid))
    work.run()
    settle(lambda: None, 0, timeout=0.5)
    code, out, err = mon.stop()
    lines = out.splitlines()
    assert code == 0, err
    assert lines[0] == "TIME(s) PCOMM            PID     PPID    RET ARGS"
    stamps = [float(line.split()[0]) for line in lines[1:]]
    assert len(stamps) == 6 and stamps == sorted(stamps) and 0 < stamps[0] < 30


def _spawn(args: list[str]) -> int:
    pid = os.posix_spawn(TRUE, args, {})
    os.waitpid(pid, 0)
    return pid


def test_whole_argv_up_to_the_read_limit(file_tool):
    """A 100 KiB argument arrives whole (25 reads); 1100 arguments stop at the limit of
    1024 reads, marked '...' as bcc marks --max-args."""
    from pybpfasm.tools.execsnoop import MAX_READS

    mon = start(file_tool, "-P", str(os.getpid()))
    long_one = ["true", "B" * 100_000, "end"]
    many = ["true", *(f"{i}" for i in range(1099))]
    pids = {_spawn(long_one): long_one, _spawn(many): many}
    settle(lambda: None, 0, timeout=0.5)
    rows = {r["pid"]: r["args"] for r in mon.events() if r["pid"] in pids}
    assert rows == {pid: args if len(args) <= MAX_READS else [*args[:MAX_READS], "..."]
                    for pid, args in pids.items()}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_leftovers_after_any_exit(tool, sig):
    mon = tool("execsnoop", "--json", "--exit")
    ids = {p["id"] for p in programs_named("on_exec")} | {p["id"] for p in programs_named("on_process_exi")}
    assert len(ids) >= 5, "the tool's programs are not loaded while it runs"
    code, _, err = mon.stop(sig)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0), err
    assert "Traceback" not in err
    still = lambda: ids & {p["id"] for p in programs_named("on_")}  # noqa: E731
    assert settle(still, set()) == set()


@pytest.mark.parametrize("args,message", [
    (["--max-args", "0"], "out of range"),
    (["--max-args", "x"], "is not a valid argument count"),
    (["-u", "-1"], "out of range"),
    (["-u", "no-such-user-pbt"], "is not a user id or user name"),
    (["-P", "\u0668"], "is not a valid process id"),
    (["-n", "("], "is not a regular expression"),
    (["-l", "[a"], "is not a regular expression"),
    (["--count", "0"], "out of range"),
    (["--hook", "fentry"], "invalid choice: 'fentry'"),
    *([(["--hook", "kprobe"], "cannot hook with kprobes here: no kprobes in this kernel")]
      if not kprobes_available() else []),
])
def test_bad_flags_one_line_exit_2(args, message):
    proc = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "execsnoop", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_says_which_hooks(tool):
    mon = tool("execsnoop", "--exit")
    code, _, err = mon.stop()
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert notes == ["note: hooks: tracepoints syscalls:sys_enter/sys_exit_ of execve, execveat, "
                     "sched:sched_process_exit"]


def test_kernels_without_bpf_loop_are_told(monkeypatch):
    """Before 5.17 (the 5.10 guest) the build stops with one sentence, not a verifier log."""
    from pybpfasm.errors import BPFError
    from pybpfasm.tools import execsnoop
    from pybpfasm.tools.common import process

    monkeypatch.setattr(process, "has_helper", lambda name: name != "loop")
    with pytest.raises(BPFError, match=r"needs bpf_loop \(Linux 5.17\+\)"):
        next(p for p in execsnoop.HOOKS.choose("tracepoint")[2] if p.name == "on_execve").build(execsnoop.Options())


def test_its_bpf_loop_programs_load_from_the_program_cache(tmp_path):
    """The entry programs call bpf_loop (a callback function, so program BTF with func_info
    and line_info): built once, the next Collection takes all four from the cache, their
    BTF included, and the kernel accepts them."""
    import json

    from pybpfasm.dsl import Collection
    from pybpfasm.dsl.cache import ProgramCache
    from pybpfasm.tools import execsnoop

    execsnoop.events.resolve()
    _, _, programs = execsnoop.HOOKS.choose("tracepoint")
    for warm in (False, True):
        with Collection(cache=ProgramCache(tmp_path)) as coll:
            for pdef in programs:
                coll.load(pdef, execsnoop.Options())
            assert coll.cached == (set(programs) if warm else set())
    entries = [json.loads(path.read_text()) for path in tmp_path.glob("*.json")]
    assert sorted(e["name"] for e in entries if e["btf"] is not None) == ["on_execve", "on_execveat"]
