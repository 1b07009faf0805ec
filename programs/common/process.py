"""Process tools' shared BPF pieces: strings out of the kernel in chunks, and paths of
files and directories walked through their dentries.

A string reaches user space as one or more records of the tool's own type (a record with
the fields ``who: Who``, ``kind``, ``index``, ``len`` and ``data: u8[N]``), each holding
``len`` bytes of ``data`` as ``bpf_probe_read_*_str`` returns them (the NUL counted; a full
record means the string goes on in the next).  Records are written straight into ring
buffer space (or, with perf buffers, into a per-CPU scratch record): ``data`` is never
zeroed or copied twice, so a short string costs one read.

The loops are ``bpf_loop`` callbacks (5.17+): the verifier checks each body once, however
many turns it takes.  Paths are walked through ``struct dentry`` and ``struct mount`` as
this kernel's BTF lays them out.  :mod:`.strings` joins the chunks in user space.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from pybpfasm.dsl import Events, PerCPUArray, Record, s32, s64, u32, u64
from pybpfasm.errors import BPFError
from pybpfasm.helpers import has_helper

#: AT_FDCWD, as the low 32 bits of a syscall's dirfd argument
AT_FDCWD = -100 & 0xFFFF_FFFF
#: AT_EMPTY_PATH (linux/fcntl.h; Python's os module does not name it)
AT_EMPTY_PATH = 0x1000
#: how many directory levels a path walk follows ('...' is shown above them)
MAX_DEPTH = 64
#: bytes of one path component (NAME_MAX and the NUL)
NAME_SIZE = 256


class Who(Record):
    """Who did it, when: copied into every record of one operation."""

    ts: u64
    tid: u32
    pid: u32
    ppid: u32
    uid: u32


class Sink:
    """Where a tool's string records go: ring buffer space reserved without zeroing, or a
    per-CPU scratch record sent through the perf buffer."""

    def __init__(self, events: Events, name: str) -> None:
        self.events = events
        self.scratch = PerCPUArray(events.record, 1, name=f"{name[:9]}_scratch")

    @contextmanager
    def record(self, b, ctx) -> Iterator:
        """A record to fill (the body is skipped, and counted lost, when there is no room);
        *ctx* is the program's context pointer (perf buffers need it)."""
        if self.events.resolve() == "ringbuf":
            with self.events.ring.reserve(b) as ev:
                yield ev
            return
        with self.scratch.lookup(b, 0) as ev:
            yield ev
            self.events.perf.output(b, ctx, ev)


def current_task(b):
    """The current ``struct task_struct`` (read with bpf_probe_read_kernel)."""
    return b.get_current_task().cast("struct task_struct")


def who(b, ts, parent: bool = True):
    """A :class:`Who` on the stack for the current task at *ts* (``ppid`` 0 unless *parent*:
    the parent costs two kernel reads)."""
    pid_tgid = b.get_current_pid_tgid()
    w = b.stack(Who, "who")
    w.ts = ts
    w.pid = pid_tgid >> 32
    w.tid = pid_tgid
    w.uid = b.get_current_uid_gid()
    w.ppid = current_task(b).real_parent.tgid if parent else 0
    return w


def fd_file(b, task, fd):
    """A Var holding the ``struct file *`` of descriptor *fd* of *task* (0 if none)."""
    found = b.var(0, u64)
    fdt = task.files.fdt
    with b.if_(fd < fdt.max_fds.cast(u64)):
        found.set(fdt.fd.at(fd * 8).cast(u64).deref())
    return found


def dir_of(b, task, dirfd, at: bool):
    """(dentry, vfsmount) Vars of the directory a relative name starts from: the current
    directory, or with *at* the file of *dirfd* unless it is AT_FDCWD."""
    dentry, mnt = b.var(0, u64), b.var(0, u64)
    cwd = task.fs.pwd
    if not at:
        dentry.set(cwd.dentry)
        mnt.set(cwd.mnt)
        return dentry, mnt
    with b.if_(dirfd == AT_FDCWD):
        dentry.set(cwd.dentry)
        mnt.set(cwd.mnt)
    with b.else_():
        file = fd_file(b, task, dirfd)
        with b.if_(file != 0):
            path = file.cast("struct file").f_path
            dentry.set(path.dentry)
            mnt.set(path.mnt)
    return dentry, mnt


def _need_loop(what: str) -> None:
    if not has_helper("loop"):
        raise BPFError(f"{what} needs bpf_loop (Linux 5.17+), which this kernel does not have")


class _Walk(Record):
    who: Who
    ctx: u64
    dentry: u64
    mnt: u64
    root_dentry: u64
    root_mnt: u64
    depth: u64
    done: u64
    kind: u64


def walk_path(b, ctx, sink: Sink, who_ref, dentry, vfsmount, kind: int) -> None:
    """Send the names from *dentry* up to the process's root (chroot, a container's root) or
    the root of its mount namespace, crossing mounts: one record of *kind*
    each (``index`` 0 the leaf), then one of ``kind + 1`` whose ``index`` is the depth and
    ``len`` 1 if the root was reached (0: it stopped after :data:`MAX_DEPTH` turns, a turn
    a name or a mount crossed)."""
    _need_loop("walking a path")
    st = b.stack(_Walk, "a path walk")
    st.who = who_ref
    st.ctx = ctx.value
    st.dentry, st.mnt, st.depth, st.done, st.kind = dentry, vfsmount, 0, 0, kind
    root = current_task(b).fs.root
    st.root_dentry, st.root_mnt = root.dentry, root.mnt

    def walk_step(sub, i, state):
        _walk_step(sub, state, sink)

    b.loop(MAX_DEPTH, walk_step, st)  # a turn a name or a mount crossing
    with sink.record(b, ctx.value) as ev:
        ev.who = who_ref
        ev.kind, ev.index, ev.len = kind + 1, st.depth, st.done


def _walk_step(b, st, sink: Sink) -> None:
    """One turn of a path walk: a mount crossed, the root found, or one name sent."""
    mount_off = b.resolve_type("struct mount").member("mnt").offset
    d, m = st.dentry.rvalue(), st.mnt.rvalue()
    with b.if_((d == 0) | (m == 0)):
        b.return_(1)
    with b.if_((d == st.root_dentry) & (m == st.root_mnt)):  # the process's own root
        st.done = 1
        b.return_(1)
    with b.if_(d == m.cast("struct vfsmount").mnt_root):
        mount = (m - mount_off).cast("struct mount")
        parent = b.var(mount.mnt_parent, u64)
        with b.if_(parent == (m - mount_off)):
            st.done = 1
            b.return_(1)
        st.dentry = mount.mnt_mountpoint
        st.mnt = parent + mount_off
        b.return_(0)
    dentry = d.cast("struct dentry")
    up = b.var(dentry.d_parent, u64)
    with b.if_(up == d):  # the root of the file system
        st.done = 1
        b.return_(1)
    with sink.record(b, st.ctx.rvalue()) as ev:
        ev.who = st.who
        ev.kind = st.kind
        ev.index = st.depth
        ev.len = b.probe_read_kernel_str(ev.data, NAME_SIZE, dentry.d_name.name)
    st.depth = st.depth + 1
    st.dentry = up


class _Argv(Record):
    who: Who
    ctx: u64
    argv: u64
    ptr: u64
    index: u64
    complete: u64
    kind: u64
    max_args: u64


def opaque(b, value: int, ref) -> None:
    """Store *value* into *ref* so the verifier does not know it (copied through a helper):
    a loop that compares a counter with it is then checked once, not once per value."""
    known = b.stack(u64, "a known value")
    known.store(value)
    b.probe_read_kernel(ref.addr(), 8, known.addr())


def send_argv(b, ctx, sink: Sink, who_ref, argv, kind: int, chunk: int, reads: int,
              max_args: int | None) -> None:
    """Send the strings of the NULL-ended user array *argv*: records of *kind*, ``index``
    the argument, *chunk* bytes at most each, at most *reads* of them (and *max_args*
    arguments); then one record of ``kind + 1`` whose ``index`` is the count of arguments
    read and ``len`` 1 if that was all of them."""
    _need_loop("reading argv")
    st = b.stack(_Argv, "an argv walk")
    st.who = who_ref
    st.ctx = ctx.value
    st.argv, st.ptr, st.index, st.complete, st.kind = argv, 0, 0, 0, kind
    if max_args is not None:
        opaque(b, max_args, st.max_args)

    def argv_step(sub, i, state):
        _argv_step(sub, state, sink, chunk, max_args)

    b.loop(reads, argv_step, st)
    with sink.record(b, ctx.value) as ev:
        ev.who = who_ref
        ev.kind, ev.index, ev.len = kind + 1, st.index, st.complete


def _argv_step(b, st, sink: Sink, chunk: int, max_args: int | None) -> None:
    """One turn: the next argument's pointer when one is due, then one chunk of it.

    Nothing here compares a counter with a constant the verifier knows (the limit is
    :func:`opaque`), so it finds the turns alike and checks the body about once.
    """
    with b.if_(st.ptr == 0):
        slot = b.stack(u64, "an argv pointer")
        b.probe_read_user(slot.addr(), 8, st.argv + st.index * 8)
        with b.if_(slot == 0):
            st.complete = 1
            b.return_(1)
        if max_args is not None:
            with b.if_(st.index >= st.max_args):
                b.return_(1)
        st.ptr = slot
    got = b.var(-1, s64)
    with sink.record(b, st.ctx.rvalue()) as ev:
        ev.who = st.who
        ev.kind = st.kind
        ev.index = st.index
        n = b.probe_read_user_str(ev.data, chunk, st.ptr)
        ev.len = n
        got.set(n.cast(s32))
    with b.if_(got < 0):
        b.return_(1)
    with b.if_(got == chunk):  # the argument goes on
        st.ptr = st.ptr + (chunk - 1)
    with b.else_():
        st.ptr = 0
        st.index = st.index + 1


__all__ = ["AT_EMPTY_PATH", "AT_FDCWD", "MAX_DEPTH", "Sink", "Who", "current_task", "dir_of",
           "fd_file", "send_argv", "walk_path", "who"]
