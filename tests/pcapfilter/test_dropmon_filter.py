"""``dropmon --filter EXPR``: the pcap filter runs on the dropped packet's bytes at kfree_skb.

The namespace's drops are known in advance: UDP datagrams and TCP SYNs to
closed ports on loopback (received with an Ethernet header: NO_SOCKET), and
UDP datagrams an nft rule drops in OUTPUT, before any MAC header exists (the
filter sees a made-up Ethernet header carrying skb->protocol).  Each filter
must report exactly the drops it names.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from pybpfasm.link.netns import entered
from tests.link.kernel_state import settle
from tests.programs.test_dropmon import send

NFT_PORT = 12

NFT_RULES = ("add table inet ppf; add chain inet ppf out { type filter hook output priority 0; }; "
             "add rule inet ppf out udp dport 12 drop")
DROPS = [  # (family, kind, address, port, count): every one a drop
    (socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 9, 5),
    (socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 10, 3),
    (socket.AF_INET6, socket.SOCK_DGRAM, "::1", 9, 4),
    (socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", 11, 2),
    (socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 12, 6),   # nft, in OUTPUT
    (socket.AF_INET6, socket.SOCK_DGRAM, "::1", 12, 1),        # nft, in OUTPUT
]
FILTERS = {  # expression -> the drops (src, dst, proto, dport) it must report, with counts
    "udp and dst port 9": {("127.0.0.1", 9): 5, ("::1", 9): 4},
    "ip6 and udp port 9": {("::1", 9): 4},
    "tcp[tcpflags] & tcp-syn != 0": {("127.0.0.1", 11): 2},
    "udp dst port 12": {("127.0.0.1", 12): 6, ("::1", 12): 1},
    "ip and not udp port 9": {("127.0.0.1", 10): 3, ("127.0.0.1", 11): 2, ("127.0.0.1", 12): 6},
    "ether proto \\ip6 and dst host ::1 and ip6[42:2] = 12": {("::1", 12): 1},
    "udp[2:2] = 12": {("127.0.0.1", 12): 6},  # a transport field is IPv4 only, as in libpcap
    "host 127.0.0.1 and (udp portrange 10-12 or tcp)": {("127.0.0.1", 10): 3, ("127.0.0.1", 11): 2,
                                                        ("127.0.0.1", 12): 6},
    "ether host 00:00:00:00:00:00 and udp": {("127.0.0.1", 9): 5, ("127.0.0.1", 10): 3, ("::1", 9): 4,
                                              ("127.0.0.1", 12): 6, ("::1", 12): 1},
    "icmp or arp": {},
}


def test_each_filter_reports_exactly_its_drops(tool, ppf_netns):
    subprocess.run(["ip", "netns", "exec", ppf_netns.name, "nft", NFT_RULES], check=True, capture_output=True)
    base = ("dropmon", "--json", "--no-stack", "--netns", str(ppf_netns.inum))
    everything = tool(*base)
    filtered = {expr: tool(*base, "--filter", expr) for expr in FILTERS}
    for family, kind, address, port, count in DROPS:
        (send_refused if port == NFT_PORT else send)(ppf_netns.name, family, kind, address, port, count)
    settle(lambda: None, 0, timeout=0.5)
    seen = everything.events()
    assert len(seen) == sum(d[-1] for d in DROPS), seen
    for expr, want in FILTERS.items():
        got: dict[tuple, int] = {}
        for ev in filtered[expr].events():
            got[(ev["dst"], ev["dport"])] = got.get((ev["dst"], ev["dport"]), 0) + 1
        assert got == want, expr


def send_refused(netns: str, family: int, kind: int, address: str, port: int, count: int) -> None:
    """Datagrams the nft rule drops in OUTPUT (each send fails with EPERM)."""
    with entered(netns):
        sock = socket.socket(family, kind)
    with sock:
        for j in range(count):
            with pytest.raises(PermissionError):
                sock.sendto(bytes([j]), (address, port))


@pytest.mark.parametrize("expr, column", [("tcp port", 9), ("host 1.2.3.4 and", 17), ("tcp[13] & ", 11),
                                          ("port 99999", 6), ("ether host 1:2:3", 12)])
def test_bad_expression_is_one_line(expr, column):
    proc = subprocess.run(["python3", "-m", "pybpfasm.cli", "dropmon", "--filter", expr],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"--filter: filter: column {column}: " in lines[0], lines[0]
