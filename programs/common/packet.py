"""Packets for every packet tool: an skb parsed into L2/L3/L4 fields, filters compiled
into the program, and the fields formatted in user space.

::

    class Drop(Record):
        pid: u32
        pkt: Packet                                   # the reusable part of the record

    hdr = read_skb(b, skb_ref)                        # one probe read of the skb's header fields
    parse(b, hdr, ctx.protocol, ev.pkt)               # VLAN/QinQ, IPv4/IPv6, ports, ICMP, TCP flags
    for cond in PacketFilter(src=..., dport=53).conditions(ev.pkt):
        with b.if_(~cond):
            b.return_(0)
    ...
    row.update(fields(ev.pkt))                        # src, dst, proto, sport, dport, ...

Addresses are kept as the packet's bytes (IPv4 in the first four of 16), so
a filter compares words and user space formats them with ``inet_ntop``.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_ntop
from typing import Any, Union

from pybpfasm.dsl import Record, be16, be32, u8, u16, u32, u64
from pybpfasm.pcapfilter.skbvlan import offloaded_vlan, vlan_fields

from . import options
from .options import IPAddress

#: Packet.flags bits: which parts were found
F_VLAN, F_PORTS, F_ICMP, F_IPV4, F_IPV6, F_QINQ, F_MAC, F_TCP = 1, 2, 4, 8, 16, 32, 64, 128
ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x86DD, 0x8100, 0x88A8
VLAN_VID_MASK = 0x0FFF
IP_OFFSET = 0x1FFF
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = (
    socket.IPPROTO_ICMP, socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_ICMPV6)

#: protocol number -> name, from Python's socket module (ICMPv6 as the tools print it)
PROTO_NAMES: dict[int, str] = {
    getattr(socket, n): n[len("IPPROTO_"):].lower().replace("icmpv6", "icmp6")
    for n in sorted(dir(socket), reverse=True) if n.startswith("IPPROTO_") and n not in ("IPPROTO_IP", "IPPROTO_MAX")
}
#: --protocol choices: the protocol numbers each stands for
PROTOCOLS: dict[str, tuple[int, ...]] = {
    "all": (), "icmp": (IPPROTO_ICMP, IPPROTO_ICMPV6), "tcp": (IPPROTO_TCP,), "udp": (IPPROTO_UDP,),
}
#: TCP flag letters as tcpdump prints them, lowest bit first (FIN SYN RST PSH ACK URG ECE CWR)
TCP_FLAG_LETTERS = "FSRP.UEW"


class Packet(Record):
    """What a packet tool knows of one packet (see :func:`parse`).

    Laid out so that every array starts where its word copies are aligned.
    """

    ALIGNMENT = 8
    saddr: u8[16]
    daddr: u8[16]
    smac: u8[6]
    ip_id: be16
    dmac: u8[6]
    sport: be16
    dport: be16
    #: IPv4: fragment offset and flags (host order); IPv6: 0
    frag: u16
    #: IP total length (IPv6: payload length + 40)
    ip_len: u16
    vlan: u16
    vlan_inner: u16
    flags: u8
    proto: u8
    icmp_type: u8
    icmp_code: u8
    tcp_flags: u8
    #: ICMP/ICMPv6 echo identifier (as in the packet)
    icmp_id: be16


def read_skb(b, skb_ref, *extra: str, mac: bool = False):
    """One probe read of the sk_buff fields :func:`parse` needs (plus *extra* fields)."""
    fields = [*vlan_fields(b), "vlan_tci", "network_header", "head", *extra]
    if mac:
        fields.append("mac_header")
    return b.read(skb_ref, *dict.fromkeys(fields), name="sk_buff headers")


def parse(b, hdr, protocol, pkt, *, mac: bool = False) -> None:
    """Fill *pkt* from an skb's header copy (:func:`read_skb`) and its ``protocol`` (host order).

    VLAN: the offloaded tag, then up to two tags still in the packet (QinQ:
    ``vlan`` is the outer one).  IPv4 and IPv6 headers; ports and TCP flags of
    first fragments; ICMP and ICMPv6 type and code.
    """
    fields = vlan_fields(b)
    with b.if_(offloaded_vlan(hdr, fields)):
        pkt.vlan = hdr.vlan_tci & VLAN_VID_MASK
        pkt.flags = pkt.flags | F_VLAN
    if mac:
        with b.if_(hdr.mac_header != 0xFFFF):
            eth = b.read(hdr.head.rvalue().at(hdr.mac_header).cast("struct ethhdr").deref(), name="ethernet header")
            pkt.dmac = eth.h_dest
            pkt.smac = eth.h_source
            pkt.flags = pkt.flags | F_MAC
    proto = b.var(protocol)
    l3 = b.var(hdr.head.rvalue().at(hdr.network_header))
    for depth in range(2):
        with b.if_(proto.in_(ETH_P_8021Q, ETH_P_8021AD)):
            tag = b.read(l3.cast("struct vlan_hdr").deref(), name="vlan header")
            vid = tag.h_vlan_TCI.to_host() & VLAN_VID_MASK
            if depth == 0:
                with b.if_(pkt.flags.test(F_VLAN)):  # offloaded outer tag: this one is inner
                    pkt.vlan_inner = vid
                    pkt.flags = pkt.flags | F_QINQ
                with b.else_():
                    pkt.vlan = vid
                    pkt.flags = pkt.flags | F_VLAN
            else:
                pkt.vlan_inner = vid
                pkt.flags = pkt.flags | F_QINQ
            proto.set(tag.h_vlan_encapsulated_proto.to_host())
            l3.set(l3 + 4)
    _ip(b, proto, l3, pkt)


def parse_ip(b, l3, pkt) -> None:
    """Fill *pkt* from an IPv4 or IPv6 header at kernel address *l3* (by its version), for
    packets that are no skb (a module's own packet struct)."""
    first = b.read(l3.cast(u8).deref(), name="ip version")
    version = b.var(first >> 4)
    proto = b.var(0)
    with b.if_(version == 4):
        proto.set(ETH_P_IP)
    with b.if_(version == 6):
        proto.set(ETH_P_IPV6)
    _ip(b, proto, l3, pkt)


def _ip(b, proto, l3, pkt) -> None:
    """IPv4 or IPv6 (by *proto*, an ethertype) at *l3*, then the transport header."""
    with b.if_(proto == ETH_P_IP):
        ip = b.read(l3.cast("struct iphdr").deref(), name="ip header")
        pkt.flags = pkt.flags | F_IPV4
        pkt.proto = ip.protocol
        pkt.ip_id = ip.id
        pkt.ip_len = ip.tot_len.to_host()
        pkt.frag = ip.frag_off.to_host()
        pkt.saddr.view(be32).store(ip.saddr)  # raw network-order bytes
        pkt.daddr.view(be32).store(ip.daddr)
        with b.if_((ip.frag_off.to_host() & IP_OFFSET) == 0):  # only first fragments carry ports
            _transport(b, pkt, l3 + (ip.ihl * 4), ip.protocol)
    with b.if_(proto == ETH_P_IPV6):
        ip6 = b.read(l3.cast("struct ipv6hdr").deref(), name="ipv6 header")
        pkt.flags = pkt.flags | F_IPV6
        pkt.proto = ip6.nexthdr
        pkt.ip_len = ip6.payload_len.to_host() + 40
        pkt.saddr = ip6.saddr
        pkt.daddr = ip6.daddr
        _transport(b, pkt, l3 + 40, ip6.nexthdr)


def _transport(b, pkt, l4, proto) -> None:
    with b.if_(proto == IPPROTO_TCP):
        tcp = b.read(l4.cast("struct tcphdr").deref(), "source", "dest", "ack_seq", name="tcp header")
        pkt.sport = tcp.source
        pkt.dport = tcp.dest
        # the flags byte follows ack_seq and the data offset byte
        flags = b.read(l4.at(13).cast(u8).deref(), name="tcp flags")
        pkt.tcp_flags = flags
        pkt.flags = pkt.flags | F_PORTS | F_TCP
    with b.if_(proto == IPPROTO_UDP):
        ports = b.read(l4.cast("struct udphdr").deref(), name="udp ports")
        pkt.sport = ports.source
        pkt.dport = ports.dest
        pkt.flags = pkt.flags | F_PORTS
    with b.if_(proto.in_(IPPROTO_ICMP, IPPROTO_ICMPV6)):
        icmp = b.read(l4.cast("struct icmphdr").deref(), name="icmp header")
        pkt.icmp_type = icmp.type
        pkt.icmp_code = icmp.code
        pkt.icmp_id = icmp.un.echo.id
        pkt.flags = pkt.flags | F_ICMP


# -- filters compiled into programs --------------------------------------------------------
def host_word(raw: bytes) -> int:
    """Packet bytes as the integer a load of them yields on this machine."""
    return int.from_bytes(raw, sys.byteorder)


def address_cond(field, flags, addr: IPAddress):
    """The packet's address *field* equals *addr* (and is of its family)."""
    if addr.version == 4:
        return flags.test(F_IPV4) & (field.view(u32) == host_word(addr.packed))
    cond = flags.test(F_IPV6)
    for i in range(0, 16, 8):
        cond = cond & (field.view(u64, i) == host_word(addr.packed[i:i + 8]))
    return cond


def bytes_cond(field, value: bytes):
    """A char/u8 array *field* holds *value*, NUL-padded (word compares)."""
    raw = value.ljust(field.size, b"\0")
    cond = None
    for i in range(0, len(raw), 8):
        c = field.view(u64, i) == host_word(raw[i:i + 8])
        cond = c if cond is None else cond & c
    return cond


@dataclass(frozen=True)
class PacketFilter:
    """Packet filters a user gave; absent ones emit no code."""

    @staticmethod
    def add_arguments(parser, what: str) -> None:
        """The drop monitors' filter flags: ``--src --dst --protocol --src-port --dst-port``
        (*what* is the noun of the help lines: "drops")."""
        parser.add_argument("--src", type=options.ip_address, help=f"only {what} from this IPv4/IPv6 address")
        parser.add_argument("--dst", type=options.ip_address, help=f"only {what} to this IPv4/IPv6 address")
        parser.add_argument("--protocol", choices=list(PROTOCOLS), default="all",
                            help="only this protocol (icmp covers ICMPv6)")
        parser.add_argument("--src-port", type=options.port, help=f"only {what} from this TCP/UDP port")
        parser.add_argument("--dst-port", type=options.port, help=f"only {what} to this TCP/UDP port")

    @classmethod
    def from_args(cls, args) -> PacketFilter:
        """The filter the flags of :meth:`add_arguments` gave."""
        return cls(src=args.src, dst=args.dst, protocol=args.protocol, sport=args.src_port, dport=args.dst_port)

    src: Union[IPAddress, None] = None
    dst: Union[IPAddress, None] = None
    protocol: str = "all"
    sport: Union[int, None] = None
    dport: Union[int, None] = None
    #: either address (``tcpdump host``)
    host: Union[IPAddress, None] = None
    #: either TCP/UDP port (``tcpdump port``)
    port: Union[int, None] = None
    #: ICMP/ICMPv6 echo identifier
    icmp_id: Union[int, None] = None
    #: an IP protocol by number (``protocol=6``)
    ip_proto: Union[int, None] = None

    def conditions(self, pkt) -> list:
        """Conditions a matching packet meets (all of them)."""
        conds = []
        flags = pkt.flags
        if self.src is not None:
            conds.append(address_cond(pkt.saddr, flags, self.src))
        if self.dst is not None:
            conds.append(address_cond(pkt.daddr, flags, self.dst))
        if PROTOCOLS[self.protocol]:
            conds.append(flags.test(F_IPV4 | F_IPV6) & pkt.proto.in_(*PROTOCOLS[self.protocol]))
        if self.sport is not None:
            conds.append(flags.test(F_PORTS) & (pkt.sport == self.sport))
        if self.dport is not None:
            conds.append(flags.test(F_PORTS) & (pkt.dport == self.dport))
        if self.host is not None:
            conds.append(address_cond(pkt.saddr, flags, self.host) | address_cond(pkt.daddr, flags, self.host))
        if self.port is not None:
            conds.append(flags.test(F_PORTS) & ((pkt.sport == self.port) | (pkt.dport == self.port)))
        if self.icmp_id is not None:
            conds.append(flags.test(F_ICMP) & (pkt.icmp_id == self.icmp_id))
        if self.ip_proto is not None:
            conds.append(flags.test(F_IPV4 | F_IPV6) & (pkt.proto == self.ip_proto))
        return conds


# -- user space -------------------------------------------------------------------------------
def proto_name(number: int) -> str | int:
    return PROTO_NAMES.get(number, number)


def tcp_flags(bits: int) -> str:
    """TCP flags as tcpdump prints them (``S``, ``S.``, ``F.``, ``R``)."""
    return "".join(letter for i, letter in enumerate(TCP_FLAG_LETTERS) if bits >> i & 1)


def mac(raw: bytes) -> str:
    return ":".join(f"{c:02x}" for c in raw)


def fields(pkt: Packet) -> dict[str, Any]:
    """A packet's fields as row values (None where the packet had no such part)."""
    v4, v6 = pkt.flags & F_IPV4, pkt.flags & F_IPV6
    src = dst = None
    if v4:
        src, dst = inet_ntop(AF_INET, pkt.saddr[:4]), inet_ntop(AF_INET, pkt.daddr[:4])
    elif v6:
        src, dst = inet_ntop(AF_INET6, pkt.saddr), inet_ntop(AF_INET6, pkt.daddr)
    ports = bool(pkt.flags & F_PORTS)
    icmp = bool(pkt.flags & F_ICMP)
    return {
        "src": src,
        "dst": dst,
        "smac": mac(pkt.smac) if pkt.flags & F_MAC else None,
        "dmac": mac(pkt.dmac) if pkt.flags & F_MAC else None,
        "ip_id": pkt.ip_id if v4 else None,
        "ip_len": pkt.ip_len if (v4 or v6) else None,
        "frag": pkt.frag if v4 else None,
        "vlan": pkt.vlan if pkt.flags & F_VLAN else None,
        "vlan_inner": pkt.vlan_inner if pkt.flags & F_QINQ else None,
        "proto": proto_name(pkt.proto) if (v4 or v6) else None,
        "sport": pkt.sport if ports else None,
        "dport": pkt.dport if ports else None,
        "icmp_type": pkt.icmp_type if icmp else None,
        "icmp_code": pkt.icmp_code if icmp else None,
        "tcp_flags": tcp_flags(pkt.tcp_flags) if pkt.flags & F_TCP else None,
    }
