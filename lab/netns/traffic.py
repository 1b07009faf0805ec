"""The traffic a scenario sends: kernel sockets where they can cause the drop, crafted
frames where they cannot. Each kind reads its parameters from the scenario's ``traffic``
table; :data:`KINDS` maps the ``kind`` key to the sender."""

from __future__ import annotations

import errno
import socket
import struct
from typing import Callable

from pybpfasm.link.netns import entered

from . import packets
from .declared import Table
from .errors import DeclarationError, LabError
from .topology import Interface, Topology

ICMP_ECHO_REQUEST = 8


class Sender:
    """One traffic declaration bound to a topology; ``send()`` emits it."""

    def __init__(self, topology: Topology, traffic: Table) -> None:
        self.topology = topology
        self.kind = traffic.get("kind", str)
        if self.kind not in KINDS:
            raise DeclarationError(f"{traffic.where}: unknown kind {self.kind!r} (one of {', '.join(KINDS)})")
        local = traffic.get("from", str)
        if local not in topology.namespaces:
            raise DeclarationError(f"{traffic.where}: unknown namespace {local!r}")
        self.netns = topology.namespaces[local].full
        self._send = KINDS[self.kind](self, traffic)
        traffic.done()

    def send(self) -> None:
        self._send()

    def socket(self, family: int, kind: int, proto: int = 0) -> socket.socket:
        """A socket created inside the sending namespace."""
        with entered(self.netns):
            return socket.socket(family, kind, proto)

    def interface(self, traffic: Table) -> tuple[Interface, str]:
        """The sending interface named by ``dev`` and the MAC address of its veth peer."""
        local = next(ns.local for ns in self.topology.namespaces.values() if ns.full == self.netns)
        dev = traffic.get("dev", str)
        for veth in self.topology.veths:
            for end, peer in ((veth.a, veth.b), (veth.b, veth.a)):
                if (end.netns, end.name) == (local, dev) and end.mac and peer.mac:
                    return end, peer.mac
        raise DeclarationError(f"{traffic.where}: {dev!r} must be a veth end in {local!r} "
                               "whose both ends declare a mac")


def _family(address: str) -> int:
    return socket.AF_INET6 if packets.is_ipv6(address) else socket.AF_INET


def udp(s: Sender, t: Table) -> Callable[[], None]:
    """``count`` one-byte datagrams from ``sport`` to ``to``:``dport``."""
    to, sport, dport, count = t.get("to", str), t.get("sport", int), t.get("dport", int), t.get("count", int)

    def send() -> None:
        with s.socket(_family(to), socket.SOCK_DGRAM) as sock:
            sock.bind(("", sport))
            for i in range(count):
                sock.sendto(bytes([i & 0xFF]), (to, dport))
    return send


def tcp_syn(s: Sender, t: Table) -> Callable[[], None]:
    """``count`` connection attempts from ``sport`` to ``to``:``dport``, each answered by RST."""
    to, sport, dport, count = t.get("to", str), t.get("sport", int), t.get("dport", int), t.get("count", int)

    def send() -> None:
        for _ in range(count):
            with s.socket(_family(to), socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("", sport))
                err = sock.connect_ex((to, dport))
                if err != errno.ECONNREFUSED:
                    raise LabError(f"TCP connect to {to} port {dport}: expected a refusal, got "
                                   f"{errno.errorcode.get(err, err)}")
    return send


def icmp_echo(s: Sender, t: Table) -> Callable[[], None]:
    """``count`` ICMP echo requests (identifier ``ident``, sequence 1..count) to ``to``."""
    to, ident, count = t.get("to", str), t.get("ident", int), t.get("count", int)

    def send() -> None:
        with s.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
            for seq in range(1, count + 1):
                header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
                csum = packets.checksum(header)
                sock.sendto(header[:2] + struct.pack("!H", csum) + header[4:], (to, 0))
    return send


class _Frame:
    """The common parameters of crafted UDP-in-IPv4 frames."""

    def __init__(self, s: Sender, t: Table) -> None:
        self.iface, self.dst_mac = s.interface(t)
        self.src, self.dst = t.get("src", str), t.get("dst", str)
        self.sport, self.dport, self.ip_id = t.get("sport", int), t.get("dport", int), t.get("ip_id", int)
        self.netns = s.netns

    def udp(self, data: bytes) -> bytes:
        return packets.udp4(self.src, self.dst, self.sport, self.dport, data)

    def frame(self, ip: bytes, vlan: int | None = None) -> bytes:
        assert self.iface.mac is not None
        return packets.ethernet(self.dst_mac, self.iface.mac, ip, vlan=vlan)

    def send(self, frames: list[bytes]) -> None:
        packets.send_frames(self.netns, self.iface.name, frames)


def bad_ip_checksum(s: Sender, t: Table) -> Callable[[], None]:
    """``count`` UDP datagrams whose IPv4 header checksum is off by one."""
    f, count = _Frame(s, t), t.get("count", int)
    ip = packets.ipv4(f.src, f.dst, packets.IPPROTO_UDP, f.udp(b"x"), f.ip_id, bad_checksum=True)
    return lambda: f.send([f.frame(ip)] * count)


def truncated(s: Sender, t: Table) -> Callable[[], None]:
    """``count`` UDP datagrams whose IPv4 total length claims ``missing`` bytes more than sent."""
    f, count, missing = _Frame(s, t), t.get("count", int), t.get("missing", int)
    payload = f.udp(b"x" * 32)
    ip = packets.ipv4(f.src, f.dst, packets.IPPROTO_UDP, payload, f.ip_id,
                      total_length=20 + len(payload) + missing)
    return lambda: f.send([f.frame(ip)] * count)


def vlan_tagged(s: Sender, t: Table) -> Callable[[], None]:
    """``count`` valid UDP datagrams in frames tagged with VLAN id ``vlan``."""
    f, count, vlan = _Frame(s, t), t.get("count", int), t.get("vlan", int)
    ip = packets.ipv4(f.src, f.dst, packets.IPPROTO_UDP, f.udp(b"x"), f.ip_id)
    return lambda: f.send([f.frame(ip, vlan=vlan)] * count)


def duplicate_fragment(s: Sender, t: Table) -> Callable[[], None]:
    """A two-fragment datagram whose first fragment is sent twice: first, first, last."""
    f = _Frame(s, t)
    first, last = packets.fragment(f.src, f.dst, packets.IPPROTO_UDP, f.udp(b"y" * 24), f.ip_id, 16)
    return lambda: f.send([f.frame(first), f.frame(first), f.frame(last)])


def incomplete_fragments(s: Sender, t: Table) -> Callable[[], None]:
    """The first fragment of a two-fragment datagram only; reassembly times out."""
    f = _Frame(s, t)
    first, _ = packets.fragment(f.src, f.dst, packets.IPPROTO_UDP, f.udp(b"z" * 24), f.ip_id, 16)
    return lambda: f.send([f.frame(first)])


def fragments(s: Sender, t: Table) -> Callable[[], None]:
    """Crafted IPv4 or IPv6 (by the addresses) UDP fragments: ``send`` lists ``[ip_id, start,
    end]`` byte spans of ``size``-byte datagrams (UDP header included), sent in that order,
    so that one train can interleave datagrams, repeat, overlap or leave out fragments."""
    iface, dst_mac = s.interface(t)
    src, dst, sport, dport = t.get("src", str), t.get("dst", str), t.get("sport", int), t.get("dport", int)
    size, spans = t.get("size", int), t.get("send", list)
    if size < 8 or not all(isinstance(x, list) and len(x) == 3 and all(type(v) is int for v in x)
                           for x in spans):
        raise DeclarationError(f"{t.where}: 'send' is a list of [ip_id, start, end] and 'size' >= 8")
    udp = packets.udp6 if packets.is_ipv6(src) else packets.udp4
    data = bytes(range(size - 8))
    try:
        ips = [packets.fragment_spans(src, dst, packets.IPPROTO_UDP, udp(src, dst, sport, dport, data),
                                      ident, [(start, end)])[0] for ident, start, end in spans]
    except ValueError as err:
        raise DeclarationError(f"{t.where}: {err}") from None
    assert iface.mac is not None
    frames = [packets.ethernet(dst_mac, iface.mac, ip) for ip in ips]
    return lambda: packets.send_frames(s.netns, iface.name, frames)


KINDS: dict[str, Callable[[Sender, Table], Callable[[], None]]] = {
    "udp": udp,
    "tcp_syn": tcp_syn,
    "icmp_echo": icmp_echo,
    "bad_ip_checksum": bad_ip_checksum,
    "truncated": truncated,
    "vlan_tagged": vlan_tagged,
    "duplicate_fragment": duplicate_fragment,
    "incomplete_fragments": incomplete_fragments,
    "fragments": fragments,
}
