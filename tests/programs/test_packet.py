"""The shared packet pieces: an skb parsed into a Packet in the kernel, against frames whose
every field is known (sent on a veth, dropped in the receiver's namespace)."""

from __future__ import annotations

import socket
import struct
from ipaddress import ip_address
import subprocess
import time

import pytest

from pybpfasm.dsl import Collection, Events, Record, tracepoint, u32
from pybpfasm.link.netns import entered
from pybpfasm.tools.common import packet
from pybpfasm.tools.common.packet import Packet, PacketFilter


class Seen(Record):
    netns: u32
    pkt: Packet


seen = Events(Seen, 1 << 16, name="pbt_pkt_seen", kind="ringbuf")


@tracepoint("skb", "kfree_skb")
def on_drop(b, ctx, opts):
    netns, filt = opts
    skb = ctx.skbaddr.cast("struct sk_buff").deref()
    if netns is not None:
        dev = b.read(skb, "dev").dev
        with b.if_((dev == 0) | (dev.nd_net.net.ns.inum != netns)):
            b.return_(0)
    ev = b.stack(Seen)
    b.zero(ev)
    packet.parse(b, packet.read_skb(b, skb, mac=True), ctx.protocol, ev.pkt, mac=True)
    for cond in filt.conditions(ev.pkt):
        with b.if_(~cond):
            b.return_(0)
    ev.netns = netns or 0
    seen.output(b, ctx.value, ev)


def _mac(netns: str, dev: str) -> bytes:
    out = subprocess.run(["ip", "-n", netns, "-br", "link", "show", dev], capture_output=True,
                         text=True, check=True).stdout.split()
    return bytes.fromhex(out[2].replace(":", ""))


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int, frag: int = 0) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))
    return head[:10] + struct.pack("!H", _checksum(head)) + head[12:] + payload


def _tcp(sport: int, dport: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 1024, 0, 0)


@pytest.fixture
def wire(veth):
    """Send raw frames from the sender's veth; read what the receiver's namespace dropped."""
    with entered(veth.receiver_ns):
        inum = __import__("os").stat("/proc/self/ns/net").st_ino
    dmac, smac = _mac(veth.receiver_ns, veth.receiver), _mac(veth.sender_ns, veth.sender)
    with entered(veth.sender_ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((veth.sender, 0))

    def send(ethertype_and_payload: bytes) -> None:
        sock.send(dmac + smac + ethertype_and_payload)

    yield inum, dmac, smac, send
    sock.close()


def _collect(inum: int | None, filt: PacketFilter, send_all) -> list[dict]:
    with Collection() as coll:
        coll.load(on_drop, (inum, filt))
        coll.attach(on_drop)
        with seen.reader(coll) as reader:
            send_all()
            time.sleep(0.3)
            return [packet.fields(ev.pkt) for ev in reader.read()]


def test_tcp_to_a_closed_port(veth, wire):
    inum, dmac, smac, send = wire
    syn = _ipv4(veth.sender_addr, veth.receiver_addr, 6, _tcp(4321, 9, 0x02), ident=777)
    got = _collect(inum, PacketFilter(protocol="tcp"), lambda: [send(b"\x08\x00" + syn) for _ in range(3)])
    want = {"src": veth.sender_addr, "dst": veth.receiver_addr, "smac": smac.hex(":"),
            "dmac": dmac.hex(":"), "ip_id": 777, "ip_len": 40, "frag": 0, "vlan": None,
            "vlan_inner": None, "proto": "tcp", "sport": 4321, "dport": 9, "icmp_type": None,
            "icmp_code": None, "tcp_flags": "S"}
    assert got == [want] * 3


def test_a_lone_later_fragment_carries_no_ports(veth, wire):
    inum, _, _, send = wire
    subprocess.run(["ip", "netns", "exec", veth.receiver_ns, "sysctl", "-qw", "net.ipv4.ipfrag_time=1"],
                   check=True)
    later = _ipv4(veth.sender_addr, veth.receiver_addr, 17, bytes(16), ident=4242, frag=3)  # offset 24

    def send_all() -> None:
        send(b"\x08\x00" + later)
        time.sleep(2.5)  # the reassembly timer frees it

    # a fragment freed by the reassembly timer has no device: matched by address and IP ID
    mine = [g for g in _collect(None, PacketFilter(src=ip_address(veth.sender_addr)), send_all)
            if g["ip_id"] == 4242]
    (got,) = mine
    assert (got["ip_id"], got["frag"], got["ip_len"]) == (4242, 3, 36)
    assert (got["sport"], got["dport"], got["proto"]) == (None, None, "udp")


def test_filters_select_in_the_kernel(veth, wire):
    inum, _, _, send = wire
    frames = [_ipv4(veth.sender_addr, veth.receiver_addr, 6, _tcp(1000 + i, 9 + i % 2, 0x02), ident=i)
              for i in range(6)]
    got = _collect(inum, PacketFilter(dport=10), lambda: [send(b"\x08\x00" + f) for f in frames])
    assert sorted(g["sport"] for g in got) == [1001, 1003, 1005]


@pytest.mark.parametrize("tags,expected", [
    ([(0x88A8, 100), (0x8100, 200)], (200, None)),
    ([(0x88A8, 100), (0x8100, 200), (0x8100, 300)], (200, 300)),
])
def test_tags_left_in_the_packet(veth, wire, tags, expected):
    """Without VLAN devices the stack takes the outer tag out (and drops it with the tag
    cleared, as on 6.18); the tags still in the frame are parsed, outer first (QinQ)."""
    inum, _, _, send = wire
    syn = _ipv4(veth.sender_addr, veth.receiver_addr, 6, _tcp(5555, 9, 0x12), ident=99)
    frame = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags) + b"\x08\x00" + syn
    (got,) = _collect(inum, PacketFilter(protocol="tcp"), lambda: send(frame))
    assert (got["vlan"], got["vlan_inner"]) == expected
    assert (got["sport"], got["tcp_flags"], got["ip_id"]) == (5555, "S.", 99)
