"""Start-up of each tool against its bpftrace twin, measured in the same run (issue 10 item 6).

For every tool in :data:`TOOLS` and every configuration, N rounds alternate
the tool and its twin while the tool's traffic runs; each number is a median:

* first event: spawn to the first event line on stdout;
* peak RSS of the process; exit: SIGINT to the process reaped.

Configurations: two installs of a wheel built from this checkout, each in a
fresh venv holding only cffi and pyroute2 besides it (``pyc``: pip compiled
the .pyc files as it does by default, run without PYTHONDONTWRITEBYTECODE;
``no-pyc``: installed with --no-compile, run with PYTHONDONTWRITEBYTECODE=1),
times two caches (``cold``: an empty XDG_CACHE_HOME; ``warm``: one a previous
run of the tool filled).  Goals: first event <= 1.0x bpftrace cold, <= 0.5x
warm; peak RSS <= 0.3x.

Run as root: ``python bench/startup_bench.py [--rounds N] [--tool NAME]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

from measure import BenchError, Run, ensure_bpftrace, every, first_event, median

ROOT = Path(__file__).resolve().parents[1]
#: traffic is one action every this many seconds
TICK = 0.010
GOALS = {"cold": 1.0, "warm": 0.5}
RSS_GOAL = 0.3


def udp_to(host: str, port: int) -> Callable[[], None]:
    """One UDP datagram to host:port per call (to a closed port: one kfree_skb each)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return lambda: sock.sendto(b"x", (host, port))


def udp_connect(host: str, port: int) -> Callable[[], None]:
    """One connect() of a UDP socket to host:port per call (no packet: the socket tools' event)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return lambda: sock.connect((host, port))


def exec_true() -> Callable[[], None]:
    """One exec of /bin/true per call (a child spawned and reaped)."""
    return lambda: os.waitpid(os.posix_spawn("/bin/true", ["true", "bench"], {}), 0)


def open_devnull() -> Callable[[], None]:
    """One openat() of /dev/null per call."""
    return lambda: os.close(os.open("/dev/null", os.O_RDONLY))


class Tool(NamedTuple):
    """A tool's arguments (after ``pybpfasm``), its bpftrace twin, and what makes its first event."""

    argv: list[str]
    bpftrace: str
    traffic: Callable[[], Callable[[], None]]


#: the periodic tools print every PERIOD seconds, their twins at the same interval
PERIOD = "0.05"
TOOLS = {
    "dropmon": Tool(["dropmon", "--json", "--protocol", "udp", "--dst-port", "9"],
                    'tracepoint:skb:kfree_skb /args->protocol == 0x0800/ '
                    '{ printf("drop %d\\n", args->reason); }',
                    lambda: udp_to("127.0.0.1", 9)),
    # the process and socket tools (issue 13): each twin is its bpftrace script's probes and output
    "execsnoop": Tool(["execsnoop", "--json"],
                      'tracepoint:syscalls:sys_enter_execve, tracepoint:syscalls:sys_enter_execveat '
                      '{ printf("%-6d ", pid); join(args->argv); }', exec_true),
    "opensnoop": Tool(["opensnoop", "--json"],
                      'tracepoint:syscalls:sys_enter_open, tracepoint:syscalls:sys_enter_openat '
                      '{ @filename[tid] = args->filename; } '
                      'tracepoint:syscalls:sys_exit_open, tracepoint:syscalls:sys_exit_openat '
                      '/@filename[tid]/ { printf("%-6d %-16s %4d %s\\n", pid, comm, args->ret, '
                      'str(@filename[tid])); delete(@filename[tid]); }', open_devnull),
    "sockstat": Tool(["sockstat", "--json", "-i", PERIOD],
                     'tracepoint:syscalls:sys_enter_accept*, tracepoint:syscalls:sys_enter_connect, '
                     'tracepoint:syscalls:sys_enter_bind, tracepoint:syscalls:sys_enter_socket*, '
                     'tracepoint:syscalls:sys_enter_send*, tracepoint:syscalls:sys_enter_recv* '
                     f'{{ @[probe] = count(); }} interval:ms:{int(float(PERIOD) * 1000)} '
                     '{ time(); print(@); clear(@); }', lambda: udp_to("127.0.0.1", 9)),
    "sofamily": Tool(["sofamily", "--json", "-i", PERIOD],
                     'tracepoint:syscalls:sys_enter_connect '
                     '{ @connect[comm, args->uservaddr->sa_family] = count(); } '
                     f'interval:ms:{int(float(PERIOD) * 1000)} {{ print(@connect); }}',
                     lambda: udp_connect("127.0.0.1", 9)),
    # the book's soprotocol reads the socket at kprobes this kernel lacks: its stand-in counts
    # the same connects at the tracepoint, by the fd
    "soprotocol": Tool(["soprotocol", "--json", "-i", PERIOD],
                       'tracepoint:syscalls:sys_enter_connect { @connect[comm, args->fd] = count(); } '
                       f'interval:ms:{int(float(PERIOD) * 1000)} {{ print(@connect); }}',
                       lambda: udp_connect("127.0.0.1", 9)),
    "soconnect": Tool(["soconnect", "--json"],
                      'tracepoint:syscalls:sys_enter_connect { @start[tid] = nsecs; } '
                      'tracepoint:syscalls:sys_exit_connect /@start[tid]/ { printf("%-6d %-16s %d %d\\n", '
                      'pid, comm, (nsecs - @start[tid]) / 1000, args->ret); delete(@start[tid]); }',
                      lambda: udp_connect("127.0.0.1", 9)),
}


class Install(NamedTuple):
    name: str
    script: str  # the venv's ``pybpfasm`` console script
    env: dict[str, str]


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr or done.stdout).strip().splitlines() or ["?"]
        raise BenchError(f"{' '.join(cmd[:4])} ...: {last[-1]}")


def build_wheel(work: Path) -> Path:
    """A wheel of this checkout, built from a copy (the build leaves nothing in the tree)."""
    src = work / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".hypothesis",
        "matrix-results", ".vagrant"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"),
          str(src)])
    wheels = sorted((work / "dist").glob("pybpfasm-*.whl"))
    if not wheels:
        raise BenchError("pip wheel made no pybpfasm wheel")
    return wheels[-1]


def make_venv(path: Path, wheel: Path, deps: Path, compiled: bool) -> Install:
    """A fresh venv with the wheel, cffi and pyroute2; .pyc files only if *compiled*."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(path)], env)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
           "--find-links", str(deps), *([] if compiled else ["--no-compile"]), str(wheel)]
    _run(pip, env)
    package = next(path.glob("lib/python*/site-packages/pybpfasm"))
    pycs = list(package.rglob("*.pyc"))
    if compiled != bool(pycs):
        raise BenchError(f"{path.name}: expected {'' if compiled else 'no '}.pyc files in {package}")
    if not compiled:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return Install("pyc" if compiled else "no-pyc", str(path / "bin" / "pybpfasm"), env)


def download_deps(work: Path) -> Path:
    """cffi, pyroute2 and what they need, as files both venvs install from."""
    deps = work / "deps"
    _run([sys.executable, "-m", "pip", "download", "-q", "-d", str(deps), "cffi", "pyroute2"])
    return deps


class Row(NamedTuple):
    install: str
    cache: str
    ours: list[Run]
    theirs: list[Run]


def measure(tool: Tool, installs: list[Install], rounds: int, work: Path) -> list[Row]:
    """Every configuration's runs, the tool and bpftrace alternating within each round."""
    twin = ["bpftrace", "-e", tool.bpftrace]
    rows = [Row(i.name, cache, [], []) for i in installs for cache in ("cold", "warm")]
    warm: dict[str, str] = {}
    with every(TICK, tool.traffic()):
        for install in installs:  # prime the warm caches with one unmeasured run each
            warm[install.name] = str(work / f"cache-warm-{install.name}")
            first_event([install.script, *tool.argv],
                        {**install.env, "XDG_CACHE_HOME": warm[install.name]})
        for n in range(rounds):
            for row in rows:
                install = next(i for i in installs if i.name == row.install)
                cache = warm[install.name] if row.cache == "warm" else str(
                    work / f"cache-cold-{install.name}-{n}")
                ours = [install.script, *tool.argv]
                env = {**install.env, "XDG_CACHE_HOME": cache}
                pair = [(row.ours, ours, env), (row.theirs, twin, None)]
                for runs, cmd, cmd_env in pair if n % 2 == 0 else pair[::-1]:
                    runs.append(first_event(cmd, cmd_env))
    return rows


def report(name: str, rows: list[Row], rounds: int) -> bool:
    """Prints the table for one tool; True if every goal is met."""
    print(f"\n{name}: medians of {rounds} rounds, against bpftrace in the same rounds")
    print(f"{'install':8} {'cache':5} | {'first event s':>13} {'bpftrace':>8} {'ratio':>6} "
          f"{'goal':>5} | {'RSS MiB':>7} {'bpftrace':>8} {'ratio':>6} {'goal':>5} | "
          f"{'exit s':>6} {'bpftrace':>8}")
    ok = True
    for row in rows:
        ours = [median([getattr(r, f) for r in row.ours]) for f in Run._fields]
        theirs = [median([getattr(r, f) for r in row.theirs]) for f in Run._fields]
        start, rss = ours[0] / theirs[0], ours[1] / theirs[1]
        goal = GOALS[row.cache]
        met = start <= goal and rss <= RSS_GOAL
        ok &= met
        print(f"{row.install:8} {row.cache:5} | {ours[0]:13.3f} {theirs[0]:8.3f} {start:5.2f}x "
              f"{'ok' if start <= goal else 'MISS':>5} | {ours[1]:7.1f} {theirs[1]:8.1f} "
              f"{rss:5.2f}x {'ok' if rss <= RSS_GOAL else 'MISS':>5} | "
              f"{ours[2]:6.3f} {theirs[2]:8.3f}")
    print(f"goals: first event <= {GOALS['cold']}x bpftrace cold, <= {GOALS['warm']}x warm; "
          f"peak RSS <= {RSS_GOAL}x")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds per configuration (default 5)")
    ap.add_argument("--tool", action="append", choices=sorted(TOOLS),
                    help="only this tool (repeatable; default: all)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if os.geteuid() != 0:
        print("startup_bench: run as root (the tools load BPF programs)", file=sys.stderr)
        return 1
    try:
        ensure_bpftrace()
        with tempfile.TemporaryDirectory(prefix="pybpfasm-startup-") as tmp:
            work = Path(tmp)
            wheel, deps = build_wheel(work), download_deps(work)
            installs = [make_venv(work / "venv-pyc", wheel, deps, compiled=True),
                        make_venv(work / "venv-no-pyc", wheel, deps, compiled=False)]
            ok = True
            for name in args.tool or sorted(TOOLS):
                ok &= report(name, measure(TOOLS[name], installs, args.rounds, work), args.rounds)
    except BenchError as err:
        print(f"startup_bench: {err}", file=sys.stderr)
        return 1
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
