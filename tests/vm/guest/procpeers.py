"""In a guest with the peers' userland (``userland.with_peers``): each peer beside our tool on
the same scripted workload, what each printed as one JSON line per pair (the host's
``tests/vm/test_process_tools.py`` compares them).

``python3 -m tests.vm.guest.procpeers`` runs: bcc's ``execsnoop-bpfcc -x`` and ``opensnoop-bpfcc``
beside ``execsnoop -x`` and ``opensnoop`` on the process workloads, and bpftrace with the
book's sockstat and soprotocol probes (kprobes) beside ``sockstat`` and ``soprotocol`` on
the socket workload.  bcc compiles against ``/lib/modules/$(uname -r)/build``: the lab's
modules share hides the headers package's symlinks, so a tmpfs overlay puts them back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pybpfasm.lab.workloads import processes, sockets

#: seconds a tracer may take to attach under TCG (bcc compiles its C first)
READY = 400
UDP = 3
#: the book's sockstat.bt and soprotocol.bt probes and maps (printed once, at exit), for one process name
BOOK_SOCKSTAT = ('tracepoint:syscalls:sys_enter_accept*, tracepoint:syscalls:sys_enter_connect, '
                 'tracepoint:syscalls:sys_enter_bind, tracepoint:syscalls:sys_enter_socket*, '
                 'kprobe:sock_recvmsg, kprobe:sock_sendmsg /comm == "COMM"/ { @[probe] = count(); }')
BOOK_SOPROTOCOL = ('kprobe:security_socket_accept, kprobe:security_socket_connect /comm == "COMM"/ '
                   '{ $sock = (struct socket *)arg0; $protocol = $sock->sk->sk_protocol & 0xff; '
                   '@connect[comm, $protocol, $sock->sk->__sk_common.skc_prot->name] = count(); }')


def headers_visible() -> None:
    """``/lib/modules/REL/{build,source}`` pointing at the headers package, over the modules share."""
    release = os.uname().release
    modules, src = Path("/lib/modules") / release, Path("/usr/src")
    if (modules / "build").exists():
        return
    top = Path(tempfile.mkdtemp(prefix="kmods-"))
    subprocess.run(["mount", "-t", "tmpfs", "kmods", str(top)], check=True)
    for sub in ("upper", "work", "merged"):
        (top / sub).mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={modules},upperdir={top}/upper,workdir={top}/work", str(top / "merged")], check=True)
    (top / "merged" / "build").symlink_to(src / f"linux-headers-{release}")
    (top / "merged" / "source").symlink_to(src / f"linux-headers-{release.removesuffix('-amd64')}-common")
    subprocess.run(["mount", "--bind", str(top / "merged"), str(modules)], check=True)


class Tracer:
    """A tracer writing to a file, started and waited for (its first line on stdout, or the
    frame's ``Tracing`` line on stderr)."""

    def __init__(self, argv: list[str], out: Path, ready_on_stderr: bool = False) -> None:
        self.out, self.err = out, out.with_suffix(".err")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "BPFTRACE_PERF_RB_PAGES": "1024"}
        with open(out, "w") as stdout, open(self.err, "w") as stderr:  # the child keeps its own copies
            self.proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)
        self.ready_file = self.err if ready_on_stderr else out
        self.ready_mark = "Tracing" if ready_on_stderr else ""

    def wait(self) -> None:
        deadline = time.monotonic() + READY
        while time.monotonic() < deadline:
            text = self.ready_file.read_text()
            if (self.ready_mark in text) if self.ready_mark else text.strip():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise SystemExit(f"{self.proc.args[:3]} did not start: {self.err.read_text()[-500:]}")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.out.read_text()


def ours(tool: str, *args: str, folder: Path) -> Tracer:
    return Tracer([sys.executable, "-m", "pybpfasm.cli", tool, "--json", *args], folder / f"ours-{tool}",
                  ready_on_stderr=True)


def pair(name: str, peer: Tracer, mine: Tracer, work, folder: Path) -> dict:
    for t in (peer, mine):
        t.wait()
    load = work.run()
    time.sleep(2)
    theirs, rows = peer.stop(), mine.stop()
    return {"pair": name, "load": load, "peer": theirs.splitlines(),
            "ours": [json.loads(line) for line in rows.splitlines() if line.strip()],
            "peer_stderr": peer.err.read_text()[-2000:], "ours_stderr": mine.err.read_text()[-2000:]}


def execs(folder: Path) -> dict:
    work = processes.Workload("exec", "pbg-exec", "2")
    return pair("execsnoop", Tracer(["execsnoop-bpfcc", "-x", "-P", str(work.pid)], folder / "bcc-exec"),
                ours("execsnoop", "-x", "-P", str(work.pid), folder=folder), work, folder)


def opens(folder: Path) -> dict:
    where = folder / "w"
    where.mkdir()
    work = processes.Workload("open", "pbg-open", str(where))
    return pair("opensnoop", Tracer(["opensnoop-bpfcc", "-p", str(work.pid)], folder / "bcc-open"),
                ours("opensnoop", "-p", str(work.pid), folder=folder), work, folder)


def book(name: str, script: str, folder: Path) -> dict:
    comm, netns = f"pbg-{name[:8]}", f"pbg-{name}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        work = sockets.Workload(comm, netns, UDP)
        peer = Tracer(["bpftrace", "-e", 'BEGIN { printf("ready\\n"); } ' + script.replace("COMM", comm)],
                      folder / f"bt-{name}")
        return pair(name, peer, ours(name, "-c", comm, folder=folder), work, folder)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def main() -> int:
    headers_visible()
    with tempfile.TemporaryDirectory(prefix="procpeers-") as tmp:
        folder = Path(tmp)
        for run in (lambda: execs(folder), lambda: opens(folder),
                    lambda: book("sockstat", BOOK_SOCKSTAT, folder),
                    lambda: book("soprotocol", BOOK_SOPROTOCOL, folder)):
            print(json.dumps(run()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
