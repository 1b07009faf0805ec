"""A scripted socket workload whose every socket call is known: the socket tools' demo and tests.

``python sockets.py COMM NETNS UDP`` names itself COMM, enters network namespace
NETNS (only loopback up, so 192.0.2.1 has no route), waits for a line on stdin,
then makes the calls below, prints one JSON line (the addresses it used) and exits.
What each tool must report follows from :func:`calls`, :data:`CONNECTS` and
:data:`ACCEPTS`, for *UDP* (at least 2) sockets made and bound first; every port is
fixed (:data:`PORTS`), so the addresses are known before it runs.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import subprocess
import sys
from typing import Any, Callable

PR_SET_NAME = 15
CLONE_NEWNET = 0x40000000
#: an address of TEST-NET-1: no route in a namespace with only loopback up
UNROUTABLE = ("192.0.2.1", 80)
#: nothing listens on TCP port 1 of a fresh namespace's loopback
CLOSED = ("127.0.0.1", 1)
#: the listening ports (TCP on 127.0.0.1 and ::1) and the first UDP port (one more per socket)
PORTS = {"tcp4": 7001, "tcp6": 7002, "udp": 7100}


def addresses() -> dict[str, tuple[str, int]]:
    """Where the workload's connects go, by the names :data:`CONNECTS` uses (IP ones only)."""
    return {"tcp4": ("127.0.0.1", PORTS["tcp4"]), "tcp6": ("::1", PORTS["tcp6"]), "closed": CLOSED,
            "unroutable": UNROUTABLE, "udp": ("127.0.0.1", PORTS["udp"] + 1)}


def calls(udp: int) -> dict[str, int]:
    """Syscalls made, by name (Python's accept() is accept4, send() sendto, recv() recvfrom)."""
    return {"socket": udp + 9, "bind": udp + 3, "connect": 7, "accept4": 4,
            "sendto": 2, "recvfrom": 2, "sendmsg": 1, "recvmsg": 1}


def _unix_stream_name() -> str:
    """The kernel's name (``sk->sk_prot->name``) of AF_UNIX stream sockets: ``UNIX-STREAM``
    since 5.14 gave them a proto of their own, ``UNIX`` before (as /proc/net/protocols lists)."""
    try:
        with open("/proc/net/protocols") as table:
            names = {line.split()[0] for line in table if line.strip()}
    except OSError:
        names = set()
    return "UNIX-STREAM" if "UNIX-STREAM" in names else "UNIX"


UNIX_STREAM = _unix_stream_name()
#: every connect(): (family, protocol, kernel protocol name, errno, which address)
CONNECTS = [
    (socket.AF_INET, socket.IPPROTO_TCP, "TCP", 0, "tcp4"),
    (socket.AF_INET, socket.IPPROTO_TCP, "TCP", errno.ECONNREFUSED, "closed"),
    (socket.AF_INET, socket.IPPROTO_TCP, "TCP", errno.ENETUNREACH, "unroutable"),
    (socket.AF_INET, socket.IPPROTO_TCP, "TCP", errno.EINPROGRESS, "tcp4"),
    (socket.AF_INET6, socket.IPPROTO_TCP, "TCPv6", 0, "tcp6"),
    (socket.AF_UNIX, 0, UNIX_STREAM, 0, "unix"),
    (socket.AF_INET, socket.IPPROTO_UDP, "UDP", 0, "udp"),
]
#: every accept(), on a listening socket of: (family, protocol, kernel protocol name)
ACCEPTS = [
    (socket.AF_INET, socket.IPPROTO_TCP, "TCP"),
    (socket.AF_INET, socket.IPPROTO_TCP, "TCP"),
    (socket.AF_INET6, socket.IPPROTO_TCP, "TCPv6"),
    (socket.AF_UNIX, 0, UNIX_STREAM),
]


def _expect(result: int, wanted: int) -> None:
    if result != wanted:
        raise SystemExit(f"connect gave {errno.errorcode.get(result, result)}, "
                         f"not {errno.errorcode.get(wanted, wanted)}")


def workload(udp: int) -> dict[str, Any]:
    """The calls of :func:`calls`, :data:`CONNECTS` and :data:`ACCEPTS`; returns the addresses used."""
    AF_INET, AF_INET6, AF_UNIX, STREAM, DGRAM = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX,
                                                 socket.SOCK_STREAM, socket.SOCK_DGRAM)
    dgram = []
    for i in range(udp):
        s = socket.socket(AF_INET, DGRAM)
        s.bind(("127.0.0.1", PORTS["udp"] + i))
        dgram.append(s)
    srv4 = socket.socket(AF_INET, STREAM)
    srv4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the last run's connections in TIME_WAIT
    srv4.bind(("127.0.0.1", PORTS["tcp4"]))
    srv4.listen(8)
    srv6 = socket.socket(AF_INET6, STREAM)
    srv6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv6.bind(("::1", PORTS["tcp6"]))
    srv6.listen(8)
    srvu = socket.socket(AF_UNIX, STREAM)
    srvu.bind(f"\0pbt-sockload-{os.getpid()}")
    srvu.listen(8)

    tcp4 = socket.socket(AF_INET, STREAM)
    _expect(tcp4.connect_ex(srv4.getsockname()), 0)
    peer4, _ = srv4.accept()
    _expect(socket.socket(AF_INET, STREAM).connect_ex(CLOSED), errno.ECONNREFUSED)
    _expect(socket.socket(AF_INET, STREAM).connect_ex(UNROUTABLE), errno.ENETUNREACH)
    pending = socket.socket(AF_INET, STREAM)
    pending.setblocking(False)
    _expect(pending.connect_ex(srv4.getsockname()), errno.EINPROGRESS)
    srv4.accept()
    tcp6 = socket.socket(AF_INET6, STREAM)
    _expect(tcp6.connect_ex(srv6.getsockname()[:2]), 0)
    srv6.accept()
    unix = socket.socket(AF_UNIX, STREAM)
    _expect(unix.connect_ex(srvu.getsockname()), 0)
    srvu.accept()
    _expect(dgram[0].connect_ex(dgram[1].getsockname()), 0)

    tcp4.send(b"a")
    peer4.recv(1)
    tcp4.sendmsg([b"b"])
    peer4.recvmsg(1)
    dgram[1].sendto(b"c", dgram[0].getsockname())
    dgram[0].recvfrom(1)
    return {"tcp4": srv4.getsockname(), "tcp6": srv6.getsockname()[:2], "closed": CLOSED,
            "unroutable": UNROUTABLE, "udp": dgram[1].getsockname()}


class Workload:
    """The workload as a child process: its pid is known before it makes a call."""

    def __init__(self, comm: str, netns: str, udp: int = 5,
                 spawn: Callable[..., subprocess.Popen] = subprocess.Popen) -> None:
        if udp < 2:
            raise ValueError("the workload connects one UDP socket to another: udp >= 2")
        self.comm, self.udp = comm, udp
        self.proc = spawn([sys.executable, __file__, comm, netns, str(udp)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        if self.proc.stdout.readline() != "ready\n":
            _, err = self.proc.communicate()
            raise RuntimeError(f"the socket workload did not start: {_last(err, self.proc.returncode)}")

    def run(self) -> dict[str, Any]:
        """Make the calls; the addresses used (JSON lists)."""
        out, err = self.proc.communicate("go\n", timeout=30)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the socket workload failed: {_last(err, self.proc.returncode)}")
        return json.loads(out)


def _last(stderr: str, status: int) -> str:
    """A failed workload's last stderr line, or its exit status."""
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {status}"


def main(comm: str, netns: str, udp: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(comm.encode()), 0, 0, 0)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise SystemExit(f"setns: {os.strerror(ctypes.get_errno())}")
    os.close(fd)
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(workload(udp)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
