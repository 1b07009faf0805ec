"""Scripted exec and open workloads whose every call is known: execsnoop's and opensnoop's
scenarios, in the demo and in the tests.

``python processes.py exec COMM [K]`` names itself COMM, waits for a line on stdin, then
forks a child for each exec of :func:`execs` and waits for it; ``python processes.py open
COMM DIR`` makes the opens of :func:`opens` under DIR (which must be empty).  Each prints
``ready`` first and, when done, one JSON line: its pid and uid, and what each call did
(``execs``: kind, args and the child's pid; ``opens``: the call, name, flag bits, mode, fd,
errno and the absolute path ``-F`` resolves).  Everything is imported before the process
takes the name COMM, so nothing else it runs or opens carries that name.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import subprocess
import sys
from typing import Callable, NamedTuple

LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15
SYS_EXECVEAT = {"x86_64": 322, "aarch64": 281}[platform.machine()]
SYS_OPENAT2 = 437  # the same number on every architecture (a syscall added after 5.0)
#: open(2) itself, where the architecture still has it
SYS_OPEN = {"x86_64": 2}.get(platform.machine())
# linux/openat2.h (Python's os module does not name these)
RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x04, 0x08
TRUE = "/usr/bin/true"
MISSING = "/nonexistent-pbl/prog"
NOBODY = 65534
#: the execs' default count of argv-with-spaces execs
K = 3


class Exec(NamedTuple):
    """One exec in a child of its own: how it is made, the name given, the argv, the errno,
    the file execsnoop resolves (None: the name given) and the child's name after it."""

    kind: str  # argv, fd (execveat AT_EMPTY_PATH), dirfd (execveat under /usr), relative, nobody, missing, killed
    name: str
    args: tuple[str, ...]
    errno: int = 0
    path: str | None = None
    comm: str = "true"

    @property
    def uid(self) -> int | None:
        """The uid it runs as (None: the workload's)."""
        return NOBODY if self.kind == "nobody" else None


def execs(k: int = K) -> list[Exec]:
    """K execs with spaces, an empty and a 4 KiB argument; an execveat through a descriptor
    (``os.execve(fd, ...)``) and one under a dirfd; a relative name; one as uid 65534; a
    missing file (ENOENT); a shell that kills itself (SIGKILL)."""
    return [
        *(Exec("argv", TRUE, ("true", f"with spaces {i}", "", "A" * 4096, f"k={i}")) for i in range(k)),
        Exec("fd", TRUE, ("true", "through-fd"), path=os.path.realpath(TRUE)),
        Exec("dirfd", "bin/true", ("true", "under-dirfd"), path="/usr/bin/true"),
        Exec("relative", "./true", ("./true", "relative"), path=os.path.realpath("/usr/bin") + "/./true"),
        Exec("nobody", TRUE, ("true", "as-nobody")),
        Exec("missing", MISSING, ("prog", "missing"), errno.ENOENT, comm=""),
        Exec("killed", "/bin/sh", ("/bin/sh", "-c", "kill -9 $$"), comm="sh"),
    ]


class Open(NamedTuple):
    """One open: the call, the name given (relative ones under the directory's fd when
    ``dirfd``, else under the working directory, DIR/sub), the ``os.O_*`` names of its flags,
    the mode of a creating open, the ``RESOLVE_*`` bits of an openat2 and the errno."""

    call: str
    name: str
    flags: tuple[str, ...]
    mode: int | None = None
    resolve: int = 0
    errno: int = 0
    dirfd: bool = False

    def full(self, folder: str) -> str:
        """The absolute path ``-F`` makes of the name."""
        if self.name.startswith("/"):
            return self.name
        return f"{folder}/{self.name}" if self.dirfd else f"{folder}/sub/{self.name}"


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
        Open("openat", "../a", ("O_WRONLY", "O_CLOEXEC")),
        *([Open("open", a, ("O_RDONLY", "O_NONBLOCK"))] if SYS_OPEN is not None else []),
    ]


def flag_bits(names: tuple[str, ...]) -> int:
    bits = 0
    for name in names:
        bits |= getattr(os, name)
    return bits


def set_comm(name: str) -> None:
    LIBC.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


def _child(run: Callable[[], None]) -> int:
    """Fork; the child runs *run* (an exec) and exits 127 if it returns or fails."""
    pid = os.fork()
    if pid == 0:
        try:
            run()
        finally:
            os._exit(127)
    os.waitpid(pid, 0)
    return pid


def _argv(args: tuple[str, ...]):
    return (ctypes.c_char_p * (len(args) + 1))(*[a.encode() for a in args], None)


def _exec(e: Exec, fd: int, usr: int) -> None:
    """The child's side of *e*."""
    if e.kind == "fd":
        os.execve(fd, list(e.args), {})
    elif e.kind == "dirfd":
        LIBC.syscall(SYS_EXECVEAT, usr, e.name.encode(), _argv(e.args), _argv(()), 0)
    elif e.kind == "relative":
        os.chdir("/usr/bin")
    elif e.kind == "nobody":
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    os.execve(e.name, list(e.args), {})


def exec_workload(comm: str, k: int) -> list[dict]:
    fd = os.open(TRUE, os.O_RDONLY)
    usr = os.open("/usr", os.O_RDONLY | os.O_DIRECTORY)
    set_comm(comm)
    return [{"kind": e.kind, "args": list(e.args), "pid": _child(lambda e=e: _exec(e, fd, usr))}
            for e in execs(k)]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _open(o: Open, dirfd: int | None) -> int:
    flags = flag_bits(o.flags)
    if o.call == "openat2":
        how = _OpenHow(flags, 0, o.resolve)
        fd = LIBC.syscall(SYS_OPENAT2, dirfd, o.name.encode(), ctypes.byref(how), ctypes.sizeof(how))
        got = ctypes.get_errno() if fd < 0 else 0
    elif o.call == "open":
        fd = LIBC.syscall(SYS_OPEN, o.name.encode(), flags, o.mode or 0)
        got = ctypes.get_errno() if fd < 0 else 0
    else:
        try:  # os.open adds O_CLOEXEC
            fd, got = os.open(o.name, flags & ~os.O_CLOEXEC, o.mode or 0o777, dir_fd=dirfd if o.dirfd else None), 0
        except OSError as err:
            fd, got = -1, err.errno
    if got != o.errno:
        raise SystemExit(f"{o.call} {o.name}: {errno.errorcode.get(got, got)}, not {errno.errorcode.get(o.errno, o.errno)}")
    return fd


def open_workload(comm: str, folder: str) -> list[dict]:
    made = opens(folder)
    os.mkdir(f"{folder}/sub")
    os.chdir(f"{folder}/sub")
    set_comm(comm)
    dirfd, done = None, []
    for o in made:
        fd = _open(o, dirfd)
        done.append({"call": o.call, "path": o.name, "flags": flag_bits(o.flags), "mode": o.mode,
                     "fd": fd if fd >= 0 else None, "errno": o.errno, "full": o.full(folder)})
        if o.name == folder:
            dirfd = fd
        elif fd >= 0:
            os.close(fd)
    if dirfd is not None:
        os.close(dirfd)
    return done


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
        done = {"execs": exec_workload(comm, int(args[0]) if args else K)}
    else:
        done = {"opens": open_workload(comm, args[0])}
    set_comm("pbl-done")
    print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), **done}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
