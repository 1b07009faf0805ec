"""Frames built byte by byte with ``struct`` (Ethernet, 802.1Q, IPv4, IPv6, UDP, fragments) and sent
through an ``AF_PACKET`` socket, for the drops that kernel sockets cannot cause (bad checksums,
truncated packets, VLAN tags, fragment trains)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Iterable

from pybpfasm.link.netns import entered

ETH_P_IP = 0x0800
ETH_P_8021Q = 0x8100
ETH_P_IPV6 = 0x86DD
IPPROTO_UDP = 17
IPPROTO_FRAGMENT = 44
IP_MF = 0x2000


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ethernet(dst: str, src: str, payload: bytes, ethertype: int | None = None,
             vlan: int | None = None) -> bytes:
    """An Ethernet frame, 802.1Q-tagged with VLAN id ``vlan`` when given (priority 0); the
    type is the payload's IP version unless given."""
    if ethertype is None:
        ethertype = ETH_P_IPV6 if payload[:1] and payload[0] >> 4 == 6 else ETH_P_IP
    tag = struct.pack("!HH", ETH_P_8021Q, vlan) if vlan is not None else b""
    return mac_bytes(dst) + mac_bytes(src) + tag + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int, *, frag: int = 0,
         ttl: int = 64, total_length: int | None = None, bad_checksum: bool = False) -> bytes:
    """An IPv4 header (no options) and ``payload``.

    ``frag`` is the flags + fragment offset field; ``total_length`` overrides the length the
    header claims; ``bad_checksum`` stores the correct checksum plus one.
    """
    length = 20 + len(payload) if total_length is None else total_length
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, ident, frag, ttl, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    csum = checksum(header)
    if bad_checksum:
        csum = (csum + 1) & 0xFFFF
    return header[:10] + struct.pack("!H", csum) + header[12:] + payload


def udp4(src: str, dst: str, sport: int, dport: int, data: bytes) -> bytes:
    """A UDP header with the checksum over the IPv4 pseudo-header, and ``data``."""
    length = 8 + len(data)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, IPPROTO_UDP, length)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    csum = checksum(pseudo + header + data) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, csum) + data


def fragment(src: str, dst: str, proto: int, datagram: bytes, ident: int,
             size: int) -> list[bytes]:
    """``datagram`` (an L4 header and data) cut into IPv4 fragments of ``size`` bytes
    (a multiple of 8), in order."""
    if size % 8:
        raise ValueError("fragment size must be a multiple of 8")
    out = []
    for offset in range(0, len(datagram), size):
        more = IP_MF if offset + size < len(datagram) else 0
        out.append(ipv4(src, dst, proto, datagram[offset:offset + size], ident,
                        frag=more | offset // 8))
    return out


def udp6(src: str, dst: str, sport: int, dport: int, data: bytes) -> bytes:
    """A UDP header with the checksum over the IPv6 pseudo-header (RFC 8200), and ``data``."""
    length = 8 + len(data)
    pseudo = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
              + struct.pack("!IxxxB", length, IPPROTO_UDP))
    header = struct.pack("!HHHH", sport, dport, length, 0)
    csum = checksum(pseudo + header + data) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, csum) + data


def ipv6(src: str, dst: str, nexthdr: int, payload: bytes, hop_limit: int = 64) -> bytes:
    """An IPv6 header and ``payload``."""
    return (struct.pack("!IHBB", 6 << 28, len(payload), nexthdr, hop_limit)
            + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + payload)


def fragment_spans(src: str, dst: str, proto: int, datagram: bytes, ident: int,
                   spans: Iterable[tuple[int, int]]) -> list[bytes]:
    """IPv4 or IPv6 (by the addresses) fragments of ``datagram`` (an L4 header and data), one
    per ``(start, end)`` byte span, in the order given: spans may repeat (duplicates), overlap,
    or leave holes.  A fragment has the more-fragments bit unless it reaches the datagram's end."""
    out = []
    for start, end in spans:
        if start % 8 or not 0 <= start < end <= len(datagram) or (end % 8 and end != len(datagram)):
            raise ValueError(f"fragment span {start}-{end}: start and end must be multiples of 8 "
                             f"within the {len(datagram)}-byte datagram (the last may end at its end)")
        more = end < len(datagram)
        piece = datagram[start:end]
        if is_ipv6(src):
            header = struct.pack("!BxHI", proto, start | more, ident)
            out.append(ipv6(src, dst, IPPROTO_FRAGMENT, header + piece))
        else:
            out.append(ipv4(src, dst, proto, piece, ident, frag=(IP_MF if more else 0) | start // 8))
    return out


def is_ipv6(address: str) -> bool:
    return ipaddress.ip_address(address).version == 6


def send_frames(netns: str, ifname: str, frames: Iterable[bytes]) -> None:
    """Transmit raw Ethernet ``frames`` on ``ifname`` inside ``netns``."""
    with entered(netns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    with sock:
        sock.bind((ifname, 0))
        for frame in frames:
            sock.send(frame)
