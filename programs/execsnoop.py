"""``pybpfasm execsnoop``: every exec, with its whole argv, the file executed and the result.

bcc's and libbpf-tools' execsnoop (flags, columns) over execve and execveat, plus
``--exit`` (a line when a traced process exits: its exit code or signal and its
lifetime, as dsahern's execsnoop prints ``[EXIT]``).  The argv is read at syscall
entry in 4 KiB chunks, argument after argument, up to :data:`MAX_READS` chunks;
the file executed is the filename, made absolute for a dirfd, ``AT_EMPTY_PATH`` or
a relative name by walking the directory's (or the descriptor's) dentries.
"""

from __future__ import annotations

import argparse
import pwd
import re
import signal
import time
from dataclasses import dataclass
from typing import Any

from pybpfasm.clock import WallClock
from pybpfasm.dsl import (
    Events,
    HashMap,
    ProgramDef,
    Record,
    char,
    s32,
    s64,
    tracepoint,
    u8,
    u32,
    u64,
)

from .common import options as types
from .common.columns import Columns
from .common.process import (
    AT_EMPTY_PATH,
    Sink,
    Who,
    current_task,
    dir_of,
    send_argv,
    walk_path,
    who,
)
from .common.strings import Chunks, decode
from .common.syscalls import SyscallHooks
from .common.tool import Tool

#: bytes of a string one record carries (4095 and the NUL)
CHUNK = 4096
#: most string reads per exec: every argument takes one per started 4095 bytes
MAX_READS = 1024

# record kinds, in the order one exec sends them (RET and EXIT come from other programs)
FILENAME, DIR, DIR_END, ARG, ARGS_END, RET, EXIT = range(7)


class ExecEvent(Record):
    who: Who
    value: s64  # RET: the syscall's result; EXIT: the exit code
    start: u64  # EXIT: when the process started (ns since boot)
    kind: u32
    index: u32
    len: s32
    comm: char[16]
    data: u8[CHUNK]


events = Events(ExecEvent, 16 << 20, name="exec_events", perf_pages=1024)
sink = Sink(events, "exec")
#: exec calls in flight: thread group id -> the calling thread
started = HashMap(u32, u32, 10240, name="exec_started")
#: processes whose exec was traced (--exit): thread group id -> 1
traced = HashMap(u32, u8, 65536, name="exec_traced")


@dataclass(frozen=True)
class Options:
    uid: int | None = None
    ppid: int | None = None
    max_args: int | None = None
    exit: bool = False
    hook: str = "auto"


def _enter(b, ctx, opts: Options, at: bool) -> None:
    w = who(b, b.ktime_get_ns())
    if opts.uid is not None:
        with b.if_(w.uid != opts.uid):
            b.return_(0)
    if opts.ppid is not None:
        with b.if_(w.ppid != opts.ppid):
            b.return_(0)
    started.update(b, w.pid, w.tid)
    flags = ctx.flags.cast(u32) if at else 0
    # the filename's first byte: '/' needs no directory; a name that cannot be read (a page
    # the process has not touched yet) is taken to be the empty one of AT_EMPTY_PATH
    first = b.var(ord("/"), u64)
    with sink.record(b, ctx.value) as ev:
        ev.who = w
        ev.kind, ev.index = FILENAME, 0
        ev.value = flags
        got = b.probe_read_user_str(ev.data, CHUNK, ctx.filename)
        ev.len = got
        with b.if_(got.cast(s32) > 0):
            first.set(ev.data[0])
        with b.if_(got == 0):  # an empty name, as 6.1 counts it (6.18 says 1)
            first.set(0)
        if at:
            with b.if_((got.cast(s32) < 0) & (flags & AT_EMPTY_PATH != 0)):
                first.set(0)
    with b.if_(first != ord("/")):
        dentry, mnt = dir_of(b, current_task(b), ctx.fd.cast(u32) if at else None, at)
        walk_path(b, ctx, sink, w, dentry, mnt, DIR)
    send_argv(b, ctx, sink, w, ctx.argv.rvalue(), ARG, CHUNK, MAX_READS, opts.max_args)


def _exit(b, ctx, opts: Options) -> None:
    w = who(b, b.ktime_get_ns())
    caller = b.var(0, u64)
    with started.lookup(b, w.pid) as tid:
        caller.set(tid)
    with b.if_(caller == 0):
        b.return_(0)
    started.delete(b, w.pid)
    w.tid = caller
    ret = ctx.ret.rvalue()
    with sink.record(b, ctx.value) as ev:
        ev.who = w
        ev.kind, ev.index, ev.len = RET, 0, 0
        ev.value = ret
        b.get_current_comm(ev.comm)
    if opts.exit:
        with b.if_(ret == 0):
            traced.update(b, w.pid, 1)


#: execve and execveat at entry and exit: their tracepoints, or kprobes on their wrappers
HOOKS = SyscallHooks("on_", {"execve": ("filename", "argv", "envp"),
                             "execveat": ("fd", "filename", "argv", "envp", "flags")},
                     enter=lambda b, ctx, opts, syscall: _enter(b, ctx, opts, at=syscall == "execveat"),
                     leave=lambda b, ctx, opts, syscall: _exit(b, ctx, opts))


@tracepoint("sched", "sched_process_exit")
def on_process_exit(b, ctx, opts: Options):
    w = who(b, b.ktime_get_ns())
    if ctx.has_field("group_dead"):
        with b.if_(ctx.group_dead == 0):
            b.return_(0)
    else:
        with b.if_(w.pid != w.tid):
            b.return_(0)
    seen = b.var(0, u64)
    with traced.lookup(b, w.pid):
        seen.set(1)
    with b.if_(seen == 0):
        b.return_(0)
    traced.delete(b, w.pid)
    task = current_task(b)
    with sink.record(b, ctx.value) as ev:
        ev.who = w
        ev.kind, ev.index, ev.len = EXIT, 0, 0
        ev.value = task.exit_code
        ev.start = task.start_time
        b.get_current_comm(ev.comm)


# -- user space ----------------------------------------------------------------------------
_uid = types.integer(0, 2**32 - 2, "user id")


def _user(text: str) -> int:
    """A user id, or a user name looked up as bcc's execsnoop does."""
    if text[:1].isdigit() or text[:1] in "+-":
        return _uid(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a user id or user name") from None


def _regex(text: str) -> re.Pattern:
    try:
        return re.compile(text)
    except re.error as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {err}") from None


class _Exec:
    """One exec's records as they arrive."""

    def __init__(self) -> None:
        self.name: bytes | None = None
        self.flags = 0
        self.dirs: dict[int, bytes] = {}
        self.dir_complete = True
        self.args = Chunks(CHUNK)
        self.end: ExecEvent | None = None
        self.ret: ExecEvent | None = None

    def path(self) -> str | None:
        if self.name is None and not (self.flags & AT_EMPTY_PATH and self.dirs):
            return None
        name = decode(self.name or b"")
        if name.startswith("/"):
            return name
        parts = [decode(self.dirs[i]) for i in sorted(self.dirs, reverse=True)]
        folder = ("..." if not self.dir_complete else "") + "/" + "/".join(parts)
        return folder if not name else folder.rstrip("/") + "/" + name


class Execsnoop(Tool):
    """New processes, from exec()."""

    tracing = "exec() syscalls"
    events = events

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-T", "--time", action="store_true", help="include a time column (HH:MM:SS)")
        parser.add_argument("-t", "--timestamp", action="store_true",
                            help="include a timestamp column (seconds since tracing began)")
        parser.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
        parser.add_argument("-u", "--uid", type=_user, metavar="USER",
                            help="only execs by this user (id or name)")
        parser.add_argument("-q", "--quote", action="store_true",
                            help="quote arguments (\" inside them is escaped)")
        parser.add_argument("-n", "--name", type=_regex,
                            help="only commands whose name matches this regular expression")
        parser.add_argument("-l", "--line", type=_regex,
                            help="only commands whose arguments match this regular expression")
        parser.add_argument("-U", "--print-uid", action="store_true", help="include a UID column")
        parser.add_argument("--max-args", type=types.integer(1, MAX_READS, "argument count"),
                            help=f"read at most this many arguments (default: all, up to {MAX_READS} "
                                 "reads of 4095 bytes)")
        parser.add_argument("-P", "--ppid", type=types.pid, help="only execs whose parent is this process")
        parser.add_argument("--exit", action="store_true",
                            help="also a line when a traced process exits: exit code and lifetime")
        parser.add_argument("--hook", choices=("auto", *HOOKS.KINDS), default="auto",
                            help="where to hook execve/execveat: the syscall tracepoints (auto: "
                                 "where present) or kprobes on the syscall wrappers")

    def options(self, args: argparse.Namespace) -> Options:
        self.args = args
        cols: list[tuple] = []
        if args.time:
            cols.append(("time", "TIME", 8, "<", lambda t: time.strftime("%H:%M:%S", time.localtime(t))))
        if args.timestamp:
            cols.append(("time", "TIME(s)", 7, "<", lambda t: f"{t - self.began:.3f}"))
        if args.print_uid:
            cols.append(("uid", "UID", 5))
        self.columns = Columns([*cols, ("comm", "PCOMM", 16), ("pid", "PID", 7), ("ppid", "PPID", 7),
                                ("ret", "RET", 3, ">"), ("args", "ARGS", 0, "<", self._args_text)])
        return Options(uid=args.uid, ppid=args.ppid, max_args=args.max_args, exit=args.exit, hook=args.hook)

    def programs(self, opts: Options) -> list[ProgramDef]:
        self.kind, self.syscalls, progs = HOOKS.choose(opts.hook)
        return [*progs, on_process_exit] if opts.exit else progs

    def notes(self, coll: Any, opts: Options) -> list[str]:
        return [HOOKS.describe(self.kind, self.syscalls) + (", sched:sched_process_exit" if opts.exit else "")]

    def prepare(self, coll: Any, opts: Options) -> None:
        self.wall = WallClock()
        self.began = time.time()
        self.pending: dict[int, _Exec] = {}
        self.shown: set[int] = set()

    def row(self, ev: ExecEvent) -> dict[str, Any] | None:
        kind = ev.kind
        if kind == EXIT:
            return self._exit_row(ev)
        if kind == FILENAME:
            self.pending[ev.who.tid] = ex = _Exec()
            ex.name = ev.data[:max(ev.len - 1, 0)] if ev.len >= 0 else None
            ex.flags = ev.value
            return None
        ex = self.pending.get(ev.who.tid)
        if ex is None:
            return None
        if kind == DIR and ev.len > 0:
            ex.dirs[ev.index] = ev.data[:ev.len - 1]
        elif kind == DIR_END:
            ex.dir_complete = ev.len == 1
        elif kind == ARG:
            ex.args.add(ev.index, ev.data, ev.len)
        elif kind == ARGS_END:
            ex.end = ev
        elif kind == RET:
            ex.ret = ev
        if ex.end is None or ex.ret is None:
            return None
        del self.pending[ev.who.tid]
        return self._exec_row(ex)

    def _exec_row(self, ex: _Exec) -> dict[str, Any] | None:
        ret = ex.ret
        if ret.value != 0 and not self.args.fails:
            return None
        args = ex.args.strings()
        if self.args.name and not self.args.name.search(ret.comm):
            return None
        if self.args.line and not self.args.line.search(" ".join(args)):
            return None
        if self.args.exit and ret.value == 0:
            self.shown.add(ret.who.pid)
        if ex.end.len != 1:  # more arguments than were read: marked as bcc marks them
            args.append("...")
        return {"time": round(self.wall(ret.who.ts), 6), "pid": ret.who.pid, "ppid": ret.who.ppid, "uid": ret.who.uid,
                "comm": ret.comm, "ret": ret.value, "path": ex.path(), "args": args}

    def _exit_row(self, ev: ExecEvent) -> dict[str, Any] | None:
        if ev.who.pid not in self.shown:
            return None
        self.shown.discard(ev.who.pid)
        sig = ev.value & 0x7F
        w = ev.who
        return {"time": round(self.wall(w.ts), 6), "pid": w.pid, "ppid": w.ppid, "uid": w.uid,
                "comm": ev.comm, "exit": None if sig else (ev.value >> 8) & 0xFF,
                "signal": _signal_name(sig) if sig else None,
                "lifetime": round(max(w.ts - ev.start, 0) / 1e9, 6)}

    def _args_text(self, args: list[str] | str) -> str:
        if isinstance(args, str):  # an [EXIT] line's text
            return args
        if self.args.quote:
            args = [a if a == "..." else '"' + a.replace('"', '\\"') + '"' for a in args]
        return " ".join(args)

    def header(self) -> str:
        return self.columns.header()

    def text(self, row: dict[str, Any]) -> str:
        if "exit" in row:
            how = f"signal={row['signal']}" if row["signal"] else f"exit={row['exit']}"
            return self.columns.line({**row, "ret": "", "args": f"[EXIT] {how} lifetime={row['lifetime']:.3f}s"})
        return self.columns.line(row)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


tool = Execsnoop()

__all__ = ["ExecEvent", "Options", "tool"]
