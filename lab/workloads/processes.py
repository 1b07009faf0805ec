"""Scripted exec and open workloads whose every call is known: execsnoop's and opensnoop's demo.

``python processes.py exec COMM`` names itself COMM, waits for a line on stdin, then forks
a child for each exec of :data:`EXECS` and waits for it; ``python processes.py open COMM DIR``
makes the opens of :func:`opens` under DIR (which must be empty).  Each prints ``ready``
first and one JSON line when done (its pid).  Everything is imported before the process
takes the name COMM, so nothing else it runs or opens carries that name.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import subprocess
import sys
from typing import Callable, NamedTuple

LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15
SYS_OPENAT2 = 437  # the same number on every architecture (a syscall added after 5.0)
# linux/openat2.h (Python's os module does not name these)
RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x04, 0x08
TRUE = "/usr/bin/true"
MISSING = "/nonexistent-pbl/prog"


class Exec(NamedTuple):
    """One exec: how it is made ("path", "fd" for execveat through a descriptor), what, the errno."""

    how: str
    path: str
    args: tuple[str, ...]
    errno: int = 0


#: every exec, each in a child of its own: argv with spaces, an empty and a 4 KiB argument,
#: an execveat through ``os.execve(fd, ...)`` (AT_EMPTY_PATH) and a missing file
EXECS = (
    *(Exec("path", TRUE, ("true", f"with spaces {i}", "", "A" * 4096, f"k={i}")) for i in range(3)),
    Exec("fd", TRUE, ("true", "through-fd")),
    Exec("path", MISSING, ("prog", "missing"), errno.ENOENT),
)


class Open(NamedTuple):
    """One open: the call, the name given (relative ones under the directory's fd when
    ``dirfd``), the ``os.O_*`` names of its flags, the mode of a creating open, the
    ``RESOLVE_*`` bits of an openat2, the errno, and the absolute path ``-F`` resolves."""

    call: str
    name: str
    flags: tuple[str, ...]
    mode: int | None = None
    resolve: int = 0
    errno: int = 0
    dirfd: bool = False

    def full(self, folder: str) -> str:
        return self.name if self.name.startswith("/") else f"{folder}/{self.name}"


def opens(folder: str) -> list[Open]:
    """The opens made under *folder*, in order; the directory itself is opened fourth.
    Python's ``os.open`` adds O_CLOEXEC to every open it makes."""
    a, missing = f"{folder}/a", f"{folder}/missing"
    return [
        Open("openat", a, ("O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"), 0o640),
        Open("openat", f"{folder}/b", ("O_RDWR", "O_CREAT", "O_EXCL", "O_APPEND", "O_CLOEXEC"), 0o600),
        Open("openat", missing, ("O_RDONLY", "O_CLOEXEC"), errno=errno.ENOENT),
        Open("openat", folder, ("O_RDONLY", "O_DIRECTORY", "O_CLOEXEC")),
        Open("openat2", "a", ("O_RDONLY", "O_CLOEXEC"), resolve=RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH,
             dirfd=True),
        Open("openat2", "../a", ("O_RDONLY",), resolve=RESOLVE_BENEATH, errno=errno.EXDEV, dirfd=True),
        Open("openat", "b", ("O_RDONLY", "O_CLOEXEC"), dirfd=True),
    ]


def flag_bits(names: tuple[str, ...]) -> int:
    bits = 0
    for name in names:
        bits |= getattr(os, name)
    return bits


def set_comm(name: str) -> None:
    LIBC.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


def _child(run: Callable[[], None]) -> None:
    """Fork; the child runs *run* (an exec) and exits 127 if it returns or fails."""
    pid = os.fork()
    if pid == 0:
        try:
            run()
        finally:
            os._exit(127)
    os.waitpid(pid, 0)


def exec_workload(comm: str) -> None:
    fd = os.open(TRUE, os.O_RDONLY)
    set_comm(comm)
    for e in EXECS:
        _child(lambda e=e: os.execve(fd if e.how == "fd" else e.path, list(e.args), {}))


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _open(o: Open, dirfd: int | None) -> int:
    flags = flag_bits(o.flags) & ~os.O_CLOEXEC  # os.open adds it
    if o.call == "openat2":
        how = _OpenHow(flag_bits(o.flags), 0, o.resolve)
        fd = LIBC.syscall(SYS_OPENAT2, dirfd, o.name.encode(), ctypes.byref(how), ctypes.sizeof(how))
        got = ctypes.get_errno() if fd < 0 else 0
    else:
        try:
            fd, got = os.open(o.name, flags, o.mode or 0o777, dir_fd=dirfd if o.dirfd else None), 0
        except OSError as err:
            fd, got = -1, err.errno
    if got != o.errno:
        raise SystemExit(f"{o.call} {o.name}: {errno.errorcode.get(got, got)}, not {errno.errorcode.get(o.errno, o.errno)}")
    return fd


def open_workload(comm: str, folder: str) -> None:
    made = opens(folder)
    set_comm(comm)
    dirfd = None
    for o in made:
        fd = _open(o, dirfd)
        if o.name == folder:
            dirfd = fd
        elif fd >= 0:
            os.close(fd)
    if dirfd is not None:
        os.close(dirfd)


class Workload:
    """A workload as a child process, waiting: its pid is known before it makes a call."""

    def __init__(self, what: str, comm: str, *args: str,
                 spawn: Callable[..., subprocess.Popen] = subprocess.Popen) -> None:
        self.comm = comm
        self.proc = spawn([sys.executable, __file__, what, comm, *args],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        if self.proc.stdout.readline() != "ready\n":
            _, err = self.proc.communicate()
            raise RuntimeError(f"the {what} workload did not start: {_last(err, self.proc.returncode)}")

    def run(self) -> dict:
        """Make the calls; what the workload printed."""
        out, err = self.proc.communicate("go\n", timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the workload failed: {_last(err, self.proc.returncode)}")
        return json.loads(out)


def _last(stderr: str, status: int) -> str:
    """A failed workload's last stderr line, or its exit status."""
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {status}"


def main(what: str, comm: str, args: list[str]) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    if what == "exec":
        exec_workload(comm)
    else:
        open_workload(comm, args[0])
    print(json.dumps({"pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
