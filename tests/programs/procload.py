"""Scripted process workloads with known events, for execsnoop and opensnoop.

``python procload.py exec COMM K`` forks children that exec ``/usr/bin/true`` K times with
awkward arguments, once through a descriptor (``os.execve(fd)``: execveat with
AT_EMPTY_PATH), once relative to a dirfd, once relative to the working directory, once as
uid 65534, once a missing file (ENOENT) and once a shell that kills itself (SIGKILL).

``python procload.py open COMM DIR`` opens files under DIR with known flags and modes, a
missing file, openat2 with RESOLVE_* (one refused with EXDEV) and relative names under a
dirfd and the working directory.

Each prints its pid, waits for a line on stdin, runs, and prints one JSON object: what it
did, for the tests to build the expected events (:class:`Workload` drives it).
Everything is imported before the process takes the name COMM, so nothing else it opens
or runs carries that name.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys

LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15
SYS_EXECVEAT = {"x86_64": 322, "aarch64": 281}[platform.machine()]
SYS_OPENAT2 = 437
SYS_OPEN = {"x86_64": 2}.get(platform.machine())
# linux/openat2.h (Python's os module does not name these)
RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x04, 0x08
TRUE = "/usr/bin/true"


def set_comm(name: str) -> None:
    LIBC.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


def child(run) -> int:
    """Fork; the child runs *run* (an exec) and exits 127 if it returns or fails."""
    pid = os.fork()
    if pid == 0:
        try:
            run()
        finally:
            os._exit(127)
    os.waitpid(pid, 0)
    return pid


def _cargs(args: list[str]):
    arr = (ctypes.c_char_p * (len(args) + 1))(*[a.encode() for a in args], None)
    return arr


def exec_workload(comm: str, k: int) -> dict:
    fd = os.open(TRUE, os.O_RDONLY)
    usr = os.open("/usr", os.O_RDONLY | os.O_DIRECTORY)
    set_comm(comm)
    done = []

    def note(kind: str, args: list[str], pid: int, **extra) -> None:
        done.append({"kind": kind, "args": args, "pid": pid, **extra})

    for i in range(k):
        args = ["true", f"with spaces {i}", "", "A" * 4096, f"k={i}"]
        note("argv", args, child(lambda a=args: os.execv(TRUE, a)))
    args = ["true", "through-fd"]
    note("fd", args, child(lambda: os.execve(fd, args, {})))
    args = ["true", "under-dirfd"]
    note("dirfd", args, child(lambda: LIBC.syscall(SYS_EXECVEAT, usr, b"bin/true", _cargs(args),
                                                    _cargs([]), 0)))
    args = ["./true", "relative"]

    def relative() -> None:
        os.chdir("/usr/bin")
        os.execv("./true", args)

    note("relative", args, child(relative))
    args = ["true", "as-nobody"]

    def nobody() -> None:
        os.setgid(65534)
        os.setuid(65534)
        os.execv(TRUE, args)

    note("nobody", args, child(nobody))
    args = ["prog", "missing"]
    note("missing", args, child(lambda: os.execv("/nonexistent-pbt/prog", args)))
    args = ["/bin/sh", "-c", "kill -9 $$"]
    note("killed", args, child(lambda: os.execv("/bin/sh", args)))
    return {"pid": os.getpid(), "uid": os.getuid(), "execs": done}


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _openat2(dirfd: int, name: str, flags: int, resolve: int) -> tuple[int, int]:
    how = OpenHow(flags, 0, resolve)
    fd = LIBC.syscall(SYS_OPENAT2, dirfd, name.encode(), ctypes.byref(how), ctypes.sizeof(how))
    return fd, ctypes.get_errno() if fd < 0 else 0


def open_workload(comm: str, folder: str) -> dict:
    done = []
    a, b = os.path.join(folder, "a"), os.path.join(folder, "b")
    sub = os.path.join(folder, "sub")
    os.mkdir(sub)
    set_comm(comm)

    def note(call: str, path: str, flags: int, mode: int | None, fd: int, err: int, full: str,
             keep: bool = False) -> int:
        done.append({"call": call, "path": path, "flags": flags, "mode": mode, "fd": fd if fd >= 0 else None,
                     "errno": err, "full": full})
        if fd >= 0 and not keep:
            os.close(fd)
        return fd

    cloexec = os.O_CLOEXEC  # Python adds it to every os.open
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    note("openat", a, flags | cloexec, 0o640, os.open(a, flags, 0o640), 0, a)
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL
    note("openat", b, flags | cloexec, 0o600, os.open(b, flags, 0o600), 0, b)
    missing = os.path.join(folder, "missing")
    try:
        os.open(missing, os.O_RDONLY)
    except FileNotFoundError as err:
        note("openat", missing, os.O_RDONLY | cloexec, None, -1, err.errno, missing)
    dirfd = note("openat", folder, os.O_RDONLY | os.O_DIRECTORY | cloexec, None,
                 os.open(folder, os.O_RDONLY | os.O_DIRECTORY), 0, folder, keep=True)
    fd, err = _openat2(dirfd, "a", os.O_RDONLY | cloexec, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)
    note("openat2", "a", os.O_RDONLY | cloexec, None, fd, err, a)
    fd, err = _openat2(dirfd, "../a", os.O_RDONLY, RESOLVE_BENEATH)
    note("openat2", "../a", os.O_RDONLY, None, fd, err, folder + "/../a")
    note("openat", "b", os.O_RDONLY | cloexec, None, os.open("b", os.O_RDONLY, dir_fd=dirfd), 0, b)
    os.chdir(sub)
    note("openat", "../a", os.O_WRONLY | cloexec, None, os.open("../a", os.O_WRONLY), 0, sub + "/../a")
    if SYS_OPEN is not None:
        fd = LIBC.syscall(SYS_OPEN, a.encode(), os.O_RDONLY | os.O_NONBLOCK, 0)
        note("open", a, os.O_RDONLY | os.O_NONBLOCK, None, fd, 0, a)
    os.close(dirfd)
    return {"pid": os.getpid(), "uid": os.getuid(), "opens": done}


class Workload:
    """The workload as a child of the tests: its pid is known before it does anything."""

    def __init__(self, what: str, comm: str, arg: str) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, what, comm, arg], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = json.loads(self.proc.stdout.readline())["pid"]

    def run(self) -> dict:
        """Let it go; what it did."""
        out, _ = self.proc.communicate("go\n", timeout=60)
        assert self.proc.returncode == 0
        return json.loads(out)


if __name__ == "__main__":
    what, comm, arg = sys.argv[1:4]
    print(json.dumps({"pid": os.getpid()}), flush=True)
    sys.stdin.readline()
    result = exec_workload(comm, int(arg)) if what == "exec" else open_workload(comm, arg)
    set_comm("pbt-done")
    print(json.dumps(result), flush=True)
