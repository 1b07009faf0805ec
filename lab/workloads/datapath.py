"""The datapath topology's known packets (``lab/topologies/datapath.toml``), sent with kernel
sockets made inside its namespaces.

- :func:`tcp_handshake`: cl connects to sv through the router (SYN, SYN-ACK, ACK), the server
  accepts, and the client closes with a zero linger (one RST|ACK): four packets, each
  forwarded by rt.
- :func:`bridged_udp`: b1 sends ``count`` datagrams over the bridge to b2, which reads them.
- :func:`nft_drop`: cl sends ``count`` datagrams to sv port 7003, which rt's nft forward chain drops.

Each returns once the kernel is done with its packets (the receiver has them, or a short wait).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time

from pybpfasm.link.netns import entered

CLIENT, SERVER, ROUTER = "10.81.1.1", "10.81.2.1", "10.81.1.254"
B1, B2 = "10.81.3.1", "10.81.3.2"
TCP_PORT, UDP_PORT, DROP_PORT = 7001, 7002, 7003
TCP_SPORT, UDP_SPORT, DROP_SPORT = 41001, 41002, 41003
#: how long the last packet of a scenario may take to reach its end (veth hand-offs are softirqs)
SETTLE = 0.3


#: every link of the topology, by namespace: none carries a packet before all are up
LINKS = (("cl", "cl0"), ("rt", "r0"), ("rt", "r1"), ("sv", "sv0"), ("b1", "eth0"), ("sw", "p1"),
         ("sw", "p2"), ("sw", "br0"), ("b2", "eth0"))
LINK_WAIT = 10.0


def wait_links_up(prefix: str) -> None:
    """Return once every link has its carrier (a veth's comes a moment after the topology is
    built: a packet sent before it is lost, and TCP would resend it)."""
    deadline = time.monotonic() + LINK_WAIT
    waiting = list(LINKS)
    while waiting:
        ns, dev = waiting[0]
        out = subprocess.run(["ip", "-n", netns(prefix, ns), "-o", "link", "show", dev],
                             capture_output=True, text=True).stdout
        if "LOWER_UP" in out and "NO-CARRIER" not in out:
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"link {dev} in {ns} has no carrier after {LINK_WAIT:.0f} s")
        time.sleep(0.05)


def netns(topology_prefix: str, local: str) -> str:
    return f"{topology_prefix}{local}"


def _socket(ns: str, kind: int) -> socket.socket:
    with entered(ns):
        return socket.socket(socket.AF_INET, kind)


def tcp_handshake(prefix: str) -> None:
    """SYN, SYN-ACK, ACK, then RST|ACK from the client (SO_LINGER 0)."""
    wait_links_up(prefix)
    server = _socket(netns(prefix, "sv"), socket.SOCK_STREAM)
    client = _socket(netns(prefix, "cl"), socket.SOCK_STREAM)
    try:
        server.bind((SERVER, TCP_PORT))
        server.listen(1)
        client.bind((CLIENT, TCP_SPORT))
        client.settimeout(5)
        client.connect((SERVER, TCP_PORT))
        server.settimeout(5)
        child, _ = server.accept()
        time.sleep(SETTLE)  # the ACK is through before the reset
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        time.sleep(SETTLE)
        child.close()
    finally:
        client.close()
        server.close()


def bridged_udp(prefix: str, count: int = 2) -> None:
    """*count* datagrams b1 -> b2 across the bridge; b2 reads each."""
    wait_links_up(prefix)
    rx = _socket(netns(prefix, "b2"), socket.SOCK_DGRAM)
    tx = _socket(netns(prefix, "b1"), socket.SOCK_DGRAM)
    try:
        rx.bind((B2, UDP_PORT))
        rx.settimeout(5)
        tx.bind((B1, UDP_SPORT))
        tx.connect((B2, UDP_PORT))
        for i in range(count):
            tx.send(b"datapath %d" % i)
            rx.recv(64)
        time.sleep(SETTLE)
    finally:
        tx.close()
        rx.close()


def nft_drop(prefix: str, count: int = 2) -> None:
    """*count* datagrams cl -> sv port 7003, dropped in rt's forward chain."""
    wait_links_up(prefix)
    tx = _socket(netns(prefix, "cl"), socket.SOCK_DGRAM)
    try:
        tx.bind((CLIENT, DROP_SPORT))
        tx.connect((SERVER, DROP_PORT))
        for i in range(count):
            tx.send(b"dropped %d" % i)
        time.sleep(SETTLE)
    finally:
        tx.close()
