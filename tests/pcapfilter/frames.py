"""Ethernet frames that exercise a packet filter's corners: up to two VLAN tags
(three TPIDs), IPv4 with options and odd IHLs, fragments, IPv6 with and
without a fragment header, TCP/UDP/SCTP/ICMP/ICMPv6, ARP and RARP, unknown
ethertypes, and truncation anywhere past the Ethernet header.

Addresses, ports and numbers come mostly from small pools that the tests'
expressions name, so that matches are common and not only misses.  Hypothesis
draws the seed of each batch (:func:`batches`): drawing every field
through hypothesis costs about 6 ms a frame here, too slow for 10,000 frames.
"""

from __future__ import annotations

import ipaddress
import random
import struct

from hypothesis import strategies as st

MACS = [bytes.fromhex(m) for m in ("ffffffffffff", "01005e000001", "020000000001", "020000000002",
                                   "333300000001", "000000000000")]
IPV4 = [ipaddress.IPv4Address(a).packed for a in (
    "10.0.0.1", "10.1.2.3", "10.200.3.4", "192.168.1.5", "192.168.7.9", "224.0.0.1",
    "255.255.255.255", "0.0.0.0", "127.0.0.1")]
IPV6 = [ipaddress.IPv6Address(a).packed for a in ("::1", "fe80::1", "2001:db8::1", "2001:db8:1::5",
                                                    "ff02::1", "::")]
PORTS = [80, 443, 53, 22, 10, 15, 20, 21, 8080, 0, 65535]
IP_PROTOS = [1, 2, 6, 17, 132, 103, 51, 50, 58, 44, 0, 255]
ETHERTYPES = [0x0800, 0x0800, 0x86DD, 0x86DD, 0x0806, 0x8035, 0x88CC, 0x0842, 0x05DC]
TPIDS = [0x8100, 0x88A8, 0x9100]
VIDS = [0, 5, 10, 100, 4095]
TCP_FLAGS = [0x02, 0x12, 0x10, 0x11, 0x04, 0x18]
ICMP_TYPES = [0, 3, 8, 11, 128, 129, 135]


class _Draw:
    """Field values from one random source: mostly from the pools, sometimes anything."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def pooled(self, pool: list, anything):
        return self.rng.choice(pool) if self.rng.random() < 0.75 else anything()

    def mac(self) -> bytes:
        return self.pooled(MACS, lambda: self.bytes(6))

    def ipv4(self) -> bytes:
        return self.pooled(IPV4, lambda: self.bytes(4))

    def ipv6(self) -> bytes:
        return self.pooled(IPV6, lambda: self.bytes(16))

    def port(self) -> int:
        return self.pooled(PORTS, lambda: self.rng.randrange(0x10000))

    def proto(self) -> int:
        return self.pooled(IP_PROTOS, lambda: self.rng.randrange(256))

    def payload(self) -> bytes:
        return self.bytes(self.rng.randrange(25))


def transport(d: _Draw, proto: int) -> bytes:
    """A header of *proto* (6, 17, 132 with ports; 1 and 58 with type and code), else nothing."""
    rng = d.rng
    if proto in (6, 17, 132):
        ports = struct.pack("!HH", d.port(), d.port())
        if proto == 6:
            offset = rng.choice([0x50, 0x60, 0x80, 0xF0])
            flags = d.pooled(TCP_FLAGS, lambda: rng.randrange(256))
            return ports + d.bytes(8) + bytes([offset, flags]) + d.bytes(6)
        return ports + d.bytes(rng.randrange(4, 9))
    if proto in (1, 58):
        return bytes([d.pooled(ICMP_TYPES, lambda: rng.randrange(256)), rng.randrange(4)]) + d.bytes(rng.randrange(2, 7))
    return b""


def ipv4_packet(d: _Draw) -> bytes:
    rng = d.rng
    ihl = 5 if rng.random() < 0.6 else rng.randrange(16)
    version = 4 if rng.random() < 0.9 else rng.randrange(16)
    proto = d.proto()
    frag = rng.choice([0, 0, 0, 0x4000, 0x2000, 0x2001, 0x0010, 0x1000, 0x1FFF, rng.randrange(0x10000)])
    options = d.bytes(max(ihl - 5, 0) * 4)
    body = transport(d, proto) + d.payload()
    total = 20 + len(options) + len(body)
    header = struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, rng.randrange(256), total,
                         rng.randrange(0x10000), frag, 64, proto, 0, d.ipv4(), d.ipv4())
    return header + options + body


def ipv6_packet(d: _Draw) -> bytes:
    proto = d.proto()
    body = transport(d, proto) + d.payload()
    nexthdr = proto
    if d.rng.random() < 0.25:  # a fragment header first
        body = struct.pack("!BBHI", proto, 0, d.rng.choice([0, 1, 8]), 1) + body
        nexthdr = 44
    return struct.pack("!IHBB16s16s", 0x60000000, len(body), nexthdr, 64, d.ipv6(), d.ipv6()) + body


def arp_packet(d: _Draw) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, d.rng.choice([1, 2, 3, 4]),
                       d.mac(), d.ipv4(), d.mac(), d.ipv4())


def frame(rng: random.Random) -> bytes:
    """One Ethernet frame of 14 bytes or more."""
    d = _Draw(rng)
    ethertype = rng.choice(ETHERTYPES)
    l3 = {0x0800: ipv4_packet, 0x86DD: ipv6_packet, 0x0806: arp_packet, 0x8035: arp_packet}.get(ethertype)
    body = l3(d) if l3 else d.bytes(rng.randrange(41))
    tags = b""
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
        tci = rng.randrange(8) << 13 | d.pooled(VIDS, lambda: rng.randrange(0x1000))
        tags += struct.pack("!HH", rng.choice(TPIDS), tci)
    data = d.mac() + d.mac() + tags + struct.pack("!H", ethertype) + body
    if rng.random() < 0.2:  # truncated
        data = data[:rng.randrange(14, len(data) + 1)]
    return data


def batches(size: int) -> st.SearchStrategy[list[bytes]]:
    """Lists of *size* frames, from a seed hypothesis draws (a failure names it)."""
    def build(seed: int) -> list[bytes]:
        rng = random.Random(seed)
        return [frame(rng) for _ in range(size)]

    return st.integers(0, 2**64 - 1).map(build)
