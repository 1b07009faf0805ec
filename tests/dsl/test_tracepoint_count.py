"""An eDSL tracepoint program counts exactly the drops the test causes.

N UDP datagrams go to a closed port inside a namespace made for the test; the
``skb:kfree_skb`` program keeps only drops of UDP packets whose device lives in
that namespace (its inode is a build-time option) and counts them per
(drop reason, UDP destination port), both read from the skb.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Iterator

import pytest

from pybpfasm.btf import BTF
from pybpfasm.dsl import Collection, HashMap, Record, be16, tracepoint, u32, u64
from pybpfasm.link.netns import entered

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="attaching programs needs root")

IPPROTO_UDP = 17
PORT, SENT = 9, 37  # discard: nothing listens in a fresh namespace


class DropKey(Record):
    reason: u32
    dport: be16


drops = HashMap(DropKey, u64, 64, name="udp_drops")


@tracepoint("skb", "kfree_skb")
def count_udp_drops(b, ctx, netns_inum: int) -> None:
    skb = ctx.skbaddr.cast("struct sk_buff")
    with b.if_(skb.dev.nd_net.net.ns.inum != netns_inum):
        b.return_(0)
    iph = b.read(skb.head.at(skb.network_header).cast("struct iphdr").deref())
    with b.if_(iph.protocol != IPPROTO_UDP):
        b.return_(0)
    udp = b.read(skb.head.at(skb.transport_header).cast("struct udphdr").deref())
    key = b.stack(DropKey, "key")
    b.zero(key)
    key.reason = ctx.reason
    key.dport = udp.dest
    drops.increment(b, key)


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace of this test's own, with loopback up; deleted afterwards."""
    name = f"pbt-dsl-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def settled_counts(counts, timeout: float = 5.0) -> list[tuple[dict, int]]:
    """The map's entries once SENT drops are in (softirq may run late under load), plus a
    short wait for any extra one."""
    deadline = time.monotonic() + timeout
    while sum(counts.values()) < SENT and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    return [(k.as_dict(), v) for k, v in counts.items()]


def test_counts_exactly_the_drops_sent(netns: str) -> None:
    inum = os.stat(f"/run/netns/{netns}").st_ino
    no_socket = BTF.kernel().enum("skb_drop_reason")["SKB_DROP_REASON_NO_SOCKET"]
    with Collection() as coll:
        coll.load(count_udp_drops, inum)
        coll.attach(count_udp_drops)
        with entered(netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            for i in range(SENT):
                sock.sendto(bytes([i]), ("127.0.0.1", PORT))
        counted = settled_counts(coll.map(drops))
    assert counted == [({"reason": no_socket, "dport": PORT}, SENT)]
