"""Crafted frames parsed back by dpkt, an independent packet library."""

from __future__ import annotations

import dpkt
from hypothesis import given
from hypothesis import strategies as st

from pybpfasm.lab.netns import packets

SRC, DST = "10.77.0.1", "10.77.0.2"
MAC_A, MAC_B = "02:00:0a:4d:00:01", "02:00:0a:4d:00:02"
ports = st.integers(1, 65535)


def parse_ip(raw: bytes) -> dpkt.ip.IP:
    return dpkt.ip.IP(raw)


def dpkt_ip_checksum(raw: bytes) -> int:
    header = bytearray(raw[:20])
    header[10:12] = b"\0\0"
    return dpkt.dpkt.in_cksum(bytes(header))


@given(st.binary(max_size=64), ports, ports, st.integers(0, 0xFFFF))
def test_udp_datagram_fields_and_checksums(data, sport, dport, ident):
    raw = packets.ipv4(SRC, DST, packets.IPPROTO_UDP, packets.udp4(SRC, DST, sport, dport, data), ident)
    ip = parse_ip(raw)
    assert (ip.id, ip.p, ip.len, ip.ttl) == (ident, 17, len(raw), 64)
    assert ip.sum == dpkt_ip_checksum(raw)
    udp = ip.data
    assert (udp.sport, udp.dport, bytes(udp.data)) == (sport, dport, data)
    # dpkt computes the UDP checksum itself when packing a copy with the checksum cleared
    clean = dpkt.ip.IP(raw)
    clean.data.sum = 0
    clean.sum = 0
    assert dpkt.ip.IP(bytes(clean)).data.sum == udp.sum


def test_bad_checksum_is_off_by_one():
    raw = packets.ipv4(SRC, DST, 17, b"12345678", 7, bad_checksum=True)
    assert parse_ip(raw).sum == (dpkt_ip_checksum(raw) + 1) & 0xFFFF


def test_truncated_header_claims_more_than_it_carries():
    raw = packets.ipv4(SRC, DST, 17, b"x" * 40, 7, total_length=100)
    assert int.from_bytes(raw[2:4], "big") == 100 and len(raw) == 60


@given(st.integers(0, 4095))
def test_vlan_tag(vid):
    frame = packets.ethernet(MAC_B, MAC_A, packets.ipv4(SRC, DST, 17, b"", 1), vlan=vid)
    eth = dpkt.ethernet.Ethernet(frame)
    assert [tag.id for tag in eth.vlan_tags] == [vid]
    assert eth.type == packets.ETH_P_8021Q and isinstance(eth.data, dpkt.ip.IP)
    assert (eth.src.hex(":"), eth.dst.hex(":")) == (MAC_A, MAC_B)


@given(st.binary(min_size=1, max_size=200), st.sampled_from([8, 16, 64]))
def test_fragments_reassemble(payload, size):
    frags = [parse_ip(f) for f in packets.fragment(SRC, DST, 17, payload, 99, size)]
    assert all(f.id == 99 for f in frags)
    assert [f.offset for f in frags] == [i * size // 8 for i in range(len(frags))]  # 8-byte units
    assert [f.mf for f in frags] == [1] * (len(frags) - 1) + [0]
    assert b"".join(bytes(f.data) for f in frags) == payload
