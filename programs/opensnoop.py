"""``pybpfasm opensnoop``: every open(), openat() and openat2(), with its result.

bcc's and libbpf-tools' opensnoop (flags, columns).  The call is remembered at entry
(filename pointer, flags, mode, dirfd) and reported at exit, when the kernel has read the
filename itself (so the page is there to read again).  ``-F`` makes relative paths
absolute by walking the dirfd's (or the current directory's) dentries in the kernel.
"""

from __future__ import annotations

import argparse
import errno
from dataclasses import dataclass
from typing import Any

from pybpfasm.clock import WallClock
from pybpfasm.dsl import (
    Events,
    HashMap,
    ProgramDef,
    Record,
    any_of,
    char,
    s32,
    s64,
    u8,
    u32,
    u64,
)

from .common import openflags
from .common import options as types
from .common.columns import Columns
from .common.process import AT_FDCWD, Sink, Who, current_task, dir_of, walk_path, who
from .common.strings import decode
from .common.syscalls import SyscallHooks
from .common.tool import Tool

#: the longest path the kernel accepts, NUL included
PATH_MAX = 4096
OPEN, DIR, DIR_END = range(3)


class OpenEvent(Record):
    who: Who
    flags: u64
    mode: u64
    value: s64  # OPEN: the descriptor, or -errno
    kind: u32
    index: u32
    len: s32
    comm: char[16]
    data: u8[PATH_MAX]


class Call(Record):
    """An open in flight, by thread id."""

    fname: u64
    flags: u64
    mode: u64
    how: u64  # openat2: its struct open_how (read at exit, as the kernel read it)
    dirfd: u32


class OpenHow(Record):
    flags: u64
    mode: u64
    resolve: u64


events = Events(OpenEvent, 16 << 20, name="open_events", perf_pages=1024)
sink = Sink(events, "open")
calls = HashMap(u32, Call, 10240, name="open_calls")


@dataclass(frozen=True)
class Options:
    pid: int | None = None
    tid: int | None = None
    uid: int | None = None
    failed: bool = False
    flags: tuple[str, ...] = ()
    full_path: bool = False
    hook: str = "auto"


def _enter(b, ctx, opts: Options, fname, flags, mode, dirfd, how) -> None:
    pid_tgid = b.get_current_pid_tgid()
    if opts.pid is not None:
        with b.if_((pid_tgid >> 32) != opts.pid):
            b.return_(0)
    if opts.tid is not None:
        with b.if_((pid_tgid & 0xFFFF_FFFF) != opts.tid):
            b.return_(0)
    if opts.uid is not None:
        with b.if_((b.get_current_uid_gid() & 0xFFFF_FFFF) != opts.uid):
            b.return_(0)
    call = b.stack(Call, "an open call")
    call.fname, call.flags, call.mode, call.how, call.dirfd = fname, flags, mode, how, dirfd
    calls.update(b, pid_tgid.cast(u32), call)


def _call(b, ctx, opts: Options, syscall: str) -> None:
    """Remember one call of *syscall* (ctx: its tracepoint's, or a :class:`SyscallArgs`)."""
    if syscall == "open":
        _enter(b, ctx, opts, ctx.filename, ctx.flags, ctx.mode, AT_FDCWD, 0)
    elif syscall == "openat":
        _enter(b, ctx, opts, ctx.filename, ctx.flags, ctx.mode, ctx.dfd, 0)
    else:
        _enter(b, ctx, opts, ctx.filename, 0, 0, ctx.dfd, ctx.how)


def _flag_filter(b, flags, wanted: tuple[str, ...]):
    """The condition that *flags* has one of the flags *wanted* (as :func:`openflags.matches`)."""
    conds = []
    for name in wanted:
        if name in openflags.ACCESS:
            conds.append((flags & openflags.ACCMODE) == openflags.ACCESS[name])
        else:
            conds.append((flags & openflags.FLAGS[name]) == openflags.FLAGS[name])
    return any_of(*conds)


def _exit(b, ctx, opts: Options) -> None:
    tid = b.get_current_pid_tgid().cast(u32)
    call = b.stack(Call, "the open call")
    found = b.var(0, u64)
    with calls.lookup(b, tid) as entry:
        b.copy(call, entry)
        found.set(1)
    with b.if_(found == 0):
        b.return_(0)
    calls.delete(b, tid)
    ret = ctx.ret.rvalue()
    if opts.failed:
        with b.if_(ret >= 0):
            b.return_(0)
    with b.if_(call.how != 0):
        how = b.stack(OpenHow, "open_how")
        b.probe_read_user(how.addr(), OpenHow.size, call.how)
        call.flags = how.flags
        call.mode = how.mode
    if opts.flags:
        with b.if_(~_flag_filter(b, call.flags.rvalue(), opts.flags)):
            b.return_(0)
    w = who(b, b.ktime_get_ns(), parent=False)  # opensnoop shows no parent
    if opts.full_path:
        first = b.stack(u64, "the filename's first byte")
        first.store(0)
        b.probe_read_user(first.addr(), 1, call.fname)
        with b.if_(first != ord("/")):
            dentry, mnt = dir_of(b, current_task(b), call.dirfd.rvalue(), True)
            walk_path(b, ctx, sink, w, dentry, mnt, DIR)
    with sink.record(b, ctx.value) as ev:
        ev.who = w
        ev.kind, ev.index = OPEN, 0
        ev.flags, ev.mode, ev.value = call.flags, call.mode, ret
        ev.len = b.probe_read_user_str(ev.data, PATH_MAX, call.fname)
        b.get_current_comm(ev.comm)


#: the open syscalls at entry and exit: their tracepoints, or kprobes on their wrappers
HOOKS = SyscallHooks("on_", {"open": ("filename", "flags", "mode"),
                             "openat": ("dfd", "filename", "flags", "mode"),
                             "openat2": ("dfd", "filename", "how", "usize")},
                     enter=_call, leave=lambda b, ctx, opts, syscall: _exit(b, ctx, opts))


# -- user space ----------------------------------------------------------------------------
def _flag(text: str) -> str:
    name = text.upper()
    name = name if name.startswith("O_") else "O_" + name
    if name not in openflags.ALL:
        raise argparse.ArgumentTypeError(f"{text!r} is not an open flag (one of {', '.join(sorted(openflags.ALL))})")
    return name


class Opensnoop(Tool):
    """Files opened, by whom, and the result."""

    tracing = "open() syscalls"
    events = events

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-T", "--timestamp", action="store_true",
                            help="include a timestamp column (seconds since the first event)")
        parser.add_argument("-U", "--print-uid", action="store_true", help="include a UID column")
        parser.add_argument("-x", "--failed", action="store_true", help="only failed opens")
        parser.add_argument("-p", "--pid", type=types.pid, help="only this process")
        parser.add_argument("-t", "--tid", type=types.pid, help="only this thread (a TID column)")
        parser.add_argument("-u", "--uid", type=types.integer(0, 2**32 - 2, "user id"),
                            help="only this user id")
        parser.add_argument("-d", dest="duration", type=types.seconds, metavar="DURATION",
                            help="total duration of the trace in seconds (as --duration)")
        parser.add_argument("-n", "--name", help="only process names containing this")
        parser.add_argument("-e", "--extended-fields", action="store_true", help="include a FLAGS column")
        parser.add_argument("-f", "--flag-filter", type=_flag, action="append", default=[], metavar="FLAG",
                            help="only opens with this flag, e.g. O_WRONLY (repeatable: any of them)")
        parser.add_argument("-F", "--full-path", action="store_true",
                            help="absolute paths: relative names joined to the dirfd or working directory")
        parser.add_argument("--hook", choices=("auto", *HOOKS.KINDS), default="auto",
                            help="where to hook the open syscalls: their tracepoints (auto: where "
                                 "present) or kprobes on the syscall wrappers")

    def options(self, args: argparse.Namespace) -> Options:
        self.args = args
        cols: list[tuple] = []
        if args.timestamp:
            cols.append(("time", "TIME(s)", 13, "<", lambda t: f"{t - self.first:.6f}"))
        if args.print_uid:
            cols.append(("uid", "UID", 5))
        cols += [("tid", "TID", 6) if args.tid is not None else ("pid", "PID", 6), ("comm", "COMM", 16),
                 ("fd", "FD", 4, ">"), ("err", "ERR", 3, ">")]
        if args.extended_fields:
            cols.append(("flags", "FLAGS", 8, "<", lambda f: f"{openflags.value(f):08o}"))
        self.columns = Columns([*cols, ("path", "PATH")])
        return Options(pid=args.pid, tid=args.tid, uid=args.uid, failed=args.failed,
                       flags=tuple(dict.fromkeys(args.flag_filter)), full_path=args.full_path,
                       hook=args.hook)

    def programs(self, opts: Options) -> list[ProgramDef]:
        # the syscalls this architecture has (no open() on arm64)
        self.kind, self.syscalls, progs = HOOKS.choose(opts.hook)
        return progs

    def notes(self, coll: Any, opts: Options) -> list[str]:
        return [HOOKS.describe(self.kind, self.syscalls)]

    def prepare(self, coll: Any, opts: Options) -> None:
        self.wall = WallClock()
        self.first: float | None = None
        self.dirs: dict[int, tuple[dict[int, bytes], bool]] = {}

    def row(self, ev: OpenEvent) -> dict[str, Any] | None:
        tid = ev.who.tid
        if ev.kind == DIR:
            names, _ = self.dirs.setdefault(tid, ({}, False))
            if ev.len > 0:
                names[ev.index] = ev.data[:ev.len - 1]
            return None
        if ev.kind == DIR_END:
            self.dirs[tid] = (self.dirs.get(tid, ({}, False))[0], ev.len == 1)
            return None
        folder = self.dirs.pop(tid, None)
        if self.args.name and self.args.name not in ev.comm:
            return None
        w = ev.who
        when = round(self.wall(w.ts), 6)
        if self.first is None:
            self.first = when
        ret = ev.value
        flags = openflags.names(ev.flags)
        creates = "O_CREAT" in flags or "O_TMPFILE" in flags
        return {"time": when, "pid": w.pid, "tid": w.tid, "uid": w.uid, "comm": ev.comm,
                "fd": ret if ret >= 0 else None,
                "errno": None if ret >= 0 else errno.errorcode.get(-ret, str(-ret)),
                "flags": flags, "mode": ev.mode if creates else None,
                "path": _path(ev.data[:ev.len - 1] if ev.len > 0 else b"", folder)}

    def header(self) -> str:
        return self.columns.header()

    def text(self, row: dict[str, Any]) -> str:
        err = row["errno"]
        shown = {**row, "fd": -1 if row["fd"] is None else row["fd"],
                 "err": 0 if err is None else getattr(errno, err, err)}
        return self.columns.line(shown)


def _path(name: bytes, folder: tuple[dict[int, bytes], bool] | None) -> str:
    """*name*, joined to the directory walked for it (-F) when it is relative."""
    text = decode(name)
    if folder is None or text.startswith("/"):
        return text
    parts, complete = folder
    base = ("" if complete else "...") + "/" + "/".join(decode(parts[i]) for i in sorted(parts, reverse=True))
    return base.rstrip("/") + "/" + text if text else base


tool = Opensnoop()

__all__ = ["OpenEvent", "Options", "tool"]
