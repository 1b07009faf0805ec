"""A 5-tuple filter written in the eDSL, run by BPF_PROG_TEST_RUN against a Python model.

The same filter is built three ways: XDP and tc with direct packet access
(``ctx.packet()``, ``pkt.header(...)``), and a socket filter with
``bpf_skb_load_bytes`` (socket filters may not read packets directly).  The
filter's values are Python options: a filter left out emits no code.
Hypothesis builds frames with dpkt (802.1Q tags, IPv4 with options and odd
IHLs, IPv6, TCP/UDP/ICMP/ICMPv6, truncations); the model below decides
whether each frame matches, and the kernel's verdict must agree.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfasm.btf import BTF
from pybpfasm.dsl import Collection, Record, Ref, be16, socket_filter, tc, u32, xdp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")

# uapi #defines (if_ether.h, in.h, pkt_cls.h): not in BTF, which only carries enums
ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q = 0x0800, 0x86DD, 0x8100
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
TC_ACT_OK, TC_ACT_SHOT = 0, 2
SOCKET_KEEP_ALL = 0x40000  # a socket filter returns the bytes to keep; 0 drops
ETH_HLEN, VLAN_HLEN = 14, 4


class Ports(Record):
    """The first four bytes of a TCP or UDP header."""

    sport: be16
    dport: be16


@dataclass(frozen=True)
class Filter:
    """Which packets to drop: every given field must match (None: any)."""

    src: Optional[str] = None
    dst: Optional[str] = None
    proto: Optional[int] = None
    sport: Optional[int] = None
    dport: Optional[int] = None

    @property
    def family(self) -> int | None:
        addrs = [a for a in (self.src, self.dst) if a is not None]
        return ipaddress.ip_address(addrs[0]).version if addrs else None


# -- the Python reference model ---------------------------------------------------------


def matches(f: Filter, frame: bytes) -> bool:
    """True when *frame* (from its Ethernet header) is one the filter drops."""
    if len(frame) < ETH_HLEN:
        return False
    ethertype, off = struct.unpack_from("!H", frame, 12)[0], ETH_HLEN
    if ethertype == ETH_P_8021Q:
        if len(frame) < off + VLAN_HLEN:
            return False
        ethertype, off = struct.unpack_from("!H", frame, off + 2)[0], off + VLAN_HLEN
    return l3_matches(f, ethertype, frame[off:])


def l3_matches(f: Filter, ethertype: int, l3: bytes) -> bool:
    if ethertype == ETH_P_IP and f.family in (None, 4):
        if len(l3) < 20 or l3[0] & 0xF < 5:
            return False
        proto, src, dst, l4 = l3[9], l3[12:16], l3[16:20], (l3[0] & 0xF) * 4
    elif ethertype == ETH_P_IPV6 and f.family in (None, 6):
        if len(l3) < 40:
            return False
        proto, src, dst, l4 = l3[6], l3[8:24], l3[24:40], 40
    else:
        return False
    if f.src is not None and src != ipaddress.ip_address(f.src).packed:
        return False
    if f.dst is not None and dst != ipaddress.ip_address(f.dst).packed:
        return False
    if f.proto is not None and proto != f.proto:
        return False
    if f.sport is None and f.dport is None:
        return True
    if proto not in (IPPROTO_TCP, IPPROTO_UDP) or len(l3) < l4 + Ports.size:
        return False
    sport, dport = struct.unpack_from("!HH", l3, l4)
    return f.sport in (None, sport) and f.dport in (None, dport)


def skb_test_run_accepts(frame: bytes) -> bool:
    """Whether BPF_PROG_TEST_RUN takes *frame* for an skb program: it wants the whole
    IPv4/IPv6 header when the outer ethertype names one (measured on 6.18: EINVAL)."""
    need = {ETH_P_IP: 20, ETH_P_IPV6: 40}.get(struct.unpack_from("!H", frame, 12)[0], 0)
    return len(frame) >= ETH_HLEN + need


# -- the eDSL programs -------------------------------------------------------------------


class SkbBytes:
    """:class:`~pybpfasm.dsl.Packet`'s interface over ``bpf_skb_load_bytes`` (socket filters).

    Each header is copied to the stack; the body runs when the copy succeeded.
    """

    def __init__(self, b, ctx) -> None:
        self.b, self.ctx = b, ctx
        self.offset = b.var(0, u32)

    @contextmanager
    def header(self, ty, *, advance: bool = True) -> Iterator[Ref]:
        copy = self.b.stack(ty, "packet copy")
        status = self.b.skb_load_bytes(self.ctx.value, self.offset, copy.addr(), copy.size)
        with self.b.if_(status == 0):
            if advance:
                self.skip(copy.size)
            yield copy

    def skip(self, length) -> None:
        self.offset.set(self.offset + length)


def verdicts(kind: str) -> tuple[int, int]:
    """(pass, drop) return values of a program kind."""
    if kind == "xdp":
        actions = BTF.kernel().enum("xdp_action")
        return actions["XDP_PASS"], actions["XDP_DROP"]
    return {"tc": (TC_ACT_OK, TC_ACT_SHOT), "socket_filter": (SOCKET_KEEP_ALL, 0)}[kind]


def five_tuple(b, ctx, f: Filter) -> None:
    """Drop what *f* describes; XDP and tc parse ``ctx.packet()``, socket filters load bytes."""
    pass_, _ = verdicts(b.prog_type)
    if b.prog_type == "socket_filter":  # the skb starts at the network header
        filter_l3(b, f, SkbBytes(b, ctx), b.var(ctx.protocol, be16))
    else:
        pkt = ctx.packet()
        with pkt.header("struct ethhdr") as eth:
            filter_l3(b, f, pkt, b.var(eth.h_proto))
    b.return_(pass_)


def filter_l3(b, f: Filter, pkt, ethertype) -> None:
    """From the (optional) 802.1Q tag on: IPv4 or IPv6, addresses, then the L4 checks."""
    pass_, _ = verdicts(b.prog_type)
    with b.if_(ethertype == ETH_P_8021Q), pkt.header("struct vlan_hdr") as vlan:
        ethertype.set(vlan.h_vlan_encapsulated_proto)
    if f.family in (None, 4):
        with b.if_(ethertype == ETH_P_IP), pkt.header("struct iphdr", advance=False) as ip:
            ihl = ip.ihl.rvalue()
            with b.if_(ihl < 5):
                b.return_(pass_)
            check_addrs(b, f, [ip.saddr], [ip.daddr])
            pkt.skip(ihl * 4)
            filter_l4(b, f, pkt, ip.protocol)
    if f.family in (None, 6):
        with b.if_(ethertype == ETH_P_IPV6), pkt.header("struct ipv6hdr") as ip6:
            words = range(4)
            check_addrs(b, f, [ip6.saddr.in6_u.u6_addr32[i] for i in words],
                        [ip6.daddr.in6_u.u6_addr32[i] for i in words])
            filter_l4(b, f, pkt, ip6.nexthdr)


def check_addrs(b, f: Filter, saddr: list[Ref], daddr: list[Ref]) -> None:
    """Return pass unless the addresses match (given as be32 words)."""
    pass_, _ = verdicts(b.prog_type)
    for want, have in ((f.src, saddr), (f.dst, daddr)):
        if want is None:
            continue
        packed = ipaddress.ip_address(want).packed
        for i, word in enumerate(have):
            with b.if_(word != int.from_bytes(packed[4 * i: 4 * i + 4], "big")):
                b.return_(pass_)


def filter_l4(b, f: Filter, pkt, proto: Ref) -> None:
    """Protocol and ports (when asked for), then drop; any mismatch returns pass."""
    pass_, drop = verdicts(b.prog_type)
    proto = proto.rvalue()
    if f.proto is not None:
        with b.if_(proto != f.proto):
            b.return_(pass_)
    if f.sport is None and f.dport is None:
        b.return_(drop)
        return
    if f.proto is not None and f.proto not in (IPPROTO_TCP, IPPROTO_UDP):
        b.return_(pass_)  # ports asked for, but this protocol has none
        return
    if f.proto is None:
        with b.if_((proto != IPPROTO_TCP) & (proto != IPPROTO_UDP)):
            b.return_(pass_)
    with pkt.header(Ports) as ports:
        for want, have in ((f.sport, ports.sport), (f.dport, ports.dport)):
            if want is not None:
                with b.if_(have != want):
                    b.return_(pass_)
        b.return_(drop)
    b.return_(pass_)


PROGRAMS = {"xdp": xdp(five_tuple), "tc": tc(five_tuple), "socket_filter": socket_filter(five_tuple)}


# -- generated frames ---------------------------------------------------------------------

V4 = ["10.0.0.1", "10.0.0.2", "192.168.7.9"]
V6 = ["2001:db8::1", "2001:db8::2", "fe80::1:2:3:4"]
PORTS = [53, 80, 1234, 65535]
PROTOS = [IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, 47]


@st.composite
def filters(draw) -> Filter:
    addrs = V4 if draw(st.booleans()) else V6
    maybe = lambda xs: draw(st.none() | st.sampled_from(xs))  # noqa: E731
    return Filter(src=maybe(addrs), dst=maybe(addrs), proto=maybe(PROTOS),
                  sport=maybe(PORTS), dport=maybe(PORTS))


def l4_payload(proto: int, sport: int, dport: int, body: bytes) -> dpkt.Packet | bytes:
    if proto == IPPROTO_TCP:
        return dpkt.tcp.TCP(sport=sport, dport=dport, data=body)
    if proto == IPPROTO_UDP:
        return dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(body), data=body)
    if proto == IPPROTO_ICMP:
        return dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=sport, seq=dport, data=body))
    if proto == IPPROTO_ICMPV6:
        return dpkt.icmp6.ICMP6(type=128, data=dpkt.icmp6.ICMP6.Echo(id=sport, seq=dport, data=body))
    return body


def build_frame(ethertype: int, src: str = "", dst: str = "", proto: int = IPPROTO_UDP,
                sport: int = 0, dport: int = 0, *, body: bytes = b"", options: bytes = b"",
                ihl: int | None = None, vlan: int | None = None) -> bytes:
    """An Ethernet frame built by dpkt; *ihl* overrides the IPv4 header length field."""
    l4 = l4_payload(proto, sport, dport, body)
    if ethertype == ETH_P_IP:
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto,
                        opts=options, hl=5 + len(options) // 4, data=l4)
        l3 = bytearray(bytes(ip))
        if ihl is not None:
            l3[0] = 0x40 | ihl
    elif ethertype == ETH_P_IPV6:
        ip6 = dpkt.ip6.IP6(src=ipaddress.ip_address(src).packed, dst=ipaddress.ip_address(dst).packed,
                           nxt=proto, hlim=64, plen=len(bytes(l4)), data=l4)
        l3 = bytearray(bytes(ip6))
    else:
        l3 = bytearray(body)
    eth = dpkt.ethernet.Ethernet(dst=b"\x02" * 6, src=b"\x04" * 6, type=ethertype, data=bytes(l3))
    if vlan is not None:
        eth.vlan_tags = [dpkt.ethernet.VLANtag8021Q(id=vlan, type=ethertype)]
    return bytes(eth)


@st.composite
def frames(draw, f: Filter) -> bytes:
    """A frame, often close to *f*: maybe tagged, IPv4 (options, lying IHL), IPv6 or other,
    maybe truncated."""
    def near(want, pool):  # the filter's value half the time, so that matches are common
        return draw(st.sampled_from(pool) if want is None or draw(st.booleans()) else st.just(want))

    ethertype = draw(st.sampled_from([ETH_P_IP, ETH_P_IP, ETH_P_IPV6, ETH_P_IPV6, 0x0806, 0x0000]))
    pool = V6 if ethertype == ETH_P_IPV6 else V4
    same_family = f.family == (6 if ethertype == ETH_P_IPV6 else 4)
    frame = build_frame(
        ethertype, near(f.src if same_family else None, pool), near(f.dst if same_family else None, pool),
        near(f.proto, PROTOS), near(f.sport, PORTS), near(f.dport, PORTS),
        body=draw(st.binary(max_size=24)),
        options=draw(st.binary(max_size=40).map(lambda o: o[: len(o) // 4 * 4])),
        ihl=draw(st.none() | st.sampled_from([0, 4, 5, 6, 15])),
        vlan=draw(st.none() | st.integers(0, 4095)))
    if draw(st.integers(0, 3)) == 0:  # truncated, but test_run needs the Ethernet header
        frame = frame[: draw(st.integers(ETH_HLEN, len(frame)))]
    return frame


# -- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(PROGRAMS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_verdicts_match_the_model(kind: str, data: st.DataObject) -> None:
    f = data.draw(filters(), "filter")
    batch = data.draw(st.lists(frames(f), min_size=1, max_size=20), "frames")
    with Collection() as coll:
        prog = coll.load(PROGRAMS[kind], f)
        pass_, drop = verdicts(kind)
        for frame in batch:
            if kind != "xdp" and not skb_test_run_accepts(frame):
                continue
            want = drop if matches(f, frame) else pass_
            assert prog.test_run(frame).retval == want, (kind, f, frame.hex())


UDP4 = dict(ethertype=ETH_P_IP, src="10.0.0.1", dst="10.0.0.2", proto=IPPROTO_UDP, sport=1234, dport=53)
UDP6 = dict(UDP4, ethertype=ETH_P_IPV6, src="2001:db8::1", dst="2001:db8::2")
EXAMPLES = [  # (frame fields, dropped by Filter(**filter of the same family)?)
    (UDP4, True), ({**UDP4, "vlan": 7}, True), ({**UDP4, "options": bytes(12)}, True),
    ({**UDP4, "src": "10.0.0.3"}, False), ({**UDP4, "dst": "10.0.0.1"}, False),
    ({**UDP4, "sport": 1235}, False), ({**UDP4, "dport": 54}, False),
    ({**UDP4, "proto": IPPROTO_TCP}, False), ({**UDP4, "ihl": 4}, False),
    (UDP6, True), ({**UDP6, "vlan": 1}, True), ({**UDP6, "src": "2001:db8::3"}, False),
    ({**UDP6, "dport": 80}, False), ({**UDP6, "proto": IPPROTO_ICMPV6}, False),
]


@pytest.mark.parametrize("kind", sorted(PROGRAMS))
@pytest.mark.parametrize(("fields", "dropped"), EXAMPLES)
def test_each_field_decides(kind: str, fields: dict, dropped: bool) -> None:
    fields = dict(fields)
    frame = build_frame(fields.pop("ethertype"), **fields)
    keys = ("src", "dst", "proto", "sport", "dport")
    base = UDP6 if ":" in fields["src"] else UDP4
    f = Filter(**{k: base[k] for k in keys})
    pass_, drop = verdicts(kind)
    assert matches(f, frame) == dropped  # the model agrees with the table
    with Collection() as coll:
        assert coll.load(PROGRAMS[kind], f).test_run(frame).retval == (drop if dropped else pass_)


def test_absent_filters_emit_no_code() -> None:
    def size(**kw) -> int:
        return len(PROGRAMS["xdp"].build(Filter(**kw))[0])

    assert size() < size(proto=IPPROTO_UDP) < size(proto=IPPROTO_UDP, dport=53)
    assert size(src="10.0.0.1") < size(src="2001:db8::1")  # IPv6 compares four words
    assert size(src="10.0.0.1") < size(proto=IPPROTO_UDP)  # one family: no code for the other
