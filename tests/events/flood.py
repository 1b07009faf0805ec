"""A veth UDP flood between two namespaces, with the kernel's own counts of what it dropped.

::

    with Flood("pev") as flood:                     # namespaces pev-tx-PID / pev-rx-PID
        sent = flood.send(100_000, rate=20_000)     # exact: datagrams the stack accepted
        flood.no_ports()                            # /proc/net/snmp Udp NoPorts of the receiver

Every datagram goes to a closed port of the receiver, so each one is one ``kfree_skb``
(reason ``NO_SOCKET``) in the receiver's namespace.  The sender is C (``flood.c``,
``sendmmsg`` batches, pinned to one CPU), built with ``cc`` or ziglang's clang.  IPv6 is
off and the neighbour entry is static, so nothing but the flood is dropped there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

SOURCE = Path(__file__).with_name("flood.c")
TX_ADDR, RX_ADDR, PORT = "10.213.0.1", "10.213.0.2", 9
RX_MAC = "02:00:00:d5:00:02"


def sender_binary() -> str:
    """The path of the built sender (built once per source version)."""
    text = SOURCE.read_bytes()
    out = Path(tempfile.gettempdir()) / f"pybpfasm-flood-{hashlib.sha256(text).hexdigest()[:12]}"
    if not out.exists():
        cc = [shutil.which("cc")] if shutil.which("cc") else [sys.executable, "-m", "ziglang", "cc"]
        tmp = out.with_suffix(f".{os.getpid()}")
        subprocess.run([*cc, "-O2", "-o", str(tmp), str(SOURCE)], check=True, capture_output=True)
        tmp.rename(out)
    return str(out)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def snmp(netns: str, table: str) -> dict[str, int]:
    """One table of a namespace's /proc/net/snmp (e.g. ``Udp``) as name -> count."""
    text = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"], check=True,
                          capture_output=True, text=True).stdout
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith(f"{table}:")]
    return dict(zip(rows[0], map(int, rows[1])))


class Sent(NamedTuple):
    """What one flood did: datagrams sent, the sender's CPU time and its wall time (ns).

    The CPU time includes the receive path the sender runs in its own context (the veth
    hands each datagram to the stack on the sending CPU), the BPF programs on it included.
    """

    sent: int
    cpu_ns: int
    wall_ns: int


class Flood:
    """Two namespaces joined by a veth pair; :meth:`send` floods the receiver's closed port."""

    def __init__(self, prefix: str) -> None:
        self.tx, self.rx = f"{prefix}-tx-{os.getpid()}", f"{prefix}-rx-{os.getpid()}"
        self.binary = sender_binary()

    def __enter__(self) -> Flood:
        try:
            for ns in (self.tx, self.rx):
                _ip("netns", "add", ns)
                for key in ("all", "default"):
                    _ip("netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", self.tx, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0",
                "address", RX_MAC, "netns", self.rx)
            _ip("-n", self.tx, "addr", "add", f"{TX_ADDR}/24", "dev", "veth0")
            _ip("-n", self.rx, "addr", "add", f"{RX_ADDR}/24", "dev", "veth0")
            _ip("-n", self.tx, "neigh", "add", RX_ADDR, "lladdr", RX_MAC, "dev", "veth0", "nud", "permanent")
            for ns in (self.tx, self.rx):
                _ip("-n", ns, "link", "set", "veth0", "up")
            self.inode = os.stat(f"/run/netns/{self.rx}").st_ino
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for ns in (self.tx, self.rx):
            _ip("netns", "del", ns, check=False)

    def no_ports(self) -> int:
        """UDP datagrams the receiver dropped for want of a socket (its kernel counter)."""
        return snmp(self.rx, "Udp")["NoPorts"]

    def send(self, count: int, rate: int = 0, cpu: int = 0) -> int:
        """Send *count* datagrams at *rate* a second (0: flat out) from CPU *cpu*; the number sent."""
        return self.send_measured(count, rate, cpu).sent

    def send_measured(self, count: int, rate: int = 0, cpu: int = 0) -> Sent:
        """:meth:`send`, with the sender's CPU time and how long it took."""
        out = self.start(count, rate, cpu).communicate()[0].split()
        return Sent(int(out[1]), int(out[3]), int(out[5]))

    def start(self, count: int, rate: int = 0, cpu: int = 0) -> subprocess.Popen:
        """:meth:`send` in the background: its stdout is ``sent N cpu_ns C wall_ns W``."""
        return subprocess.Popen(["ip", "netns", "exec", self.tx, self.binary, RX_ADDR, str(PORT),
                                 str(count), str(rate), str(cpu)], stdout=subprocess.PIPE, text=True)
