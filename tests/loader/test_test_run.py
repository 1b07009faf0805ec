"""BPF_PROG_TEST_RUN of XDP, tc, socket-filter and raw-tracepoint programs against Python models.

Packets come from hypothesis; each program's verdict and output packet must
equal what a few lines of Python compute for the same bytes.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import ProgType, SyscallError
from pybpfasm.text import parse

XDP_DROP, XDP_PASS = 1, 2
TC_ACT_OK, TC_ACT_SHOT = 0, 2
PORT = 4789

# drop IPv4/UDP (IHL 5) packets to PORT, pass everything else
XDP_UDP_FILTER = f"""
    r2 = *(u32 *)(r1 + 4)
    r1 = *(u32 *)(r1 + 0)
    r3 = r1
    r3 += 38
    if r3 > r2 goto pass
    r4 = *(u16 *)(r1 + 12)
    if r4 != 0x8 goto pass
    r4 = *(u8 *)(r1 + 14)
    if r4 != 0x45 goto pass
    r4 = *(u8 *)(r1 + 23)
    if r4 != 17 goto pass
    r4 = *(u16 *)(r1 + 36)
    r4 = be16 r4
    if r4 != {PORT} goto pass
    r0 = {XDP_DROP}
    exit
pass:
    r0 = {XDP_PASS}
    exit
"""


def xdp_udp_filter_model(pkt: bytes) -> int:
    if len(pkt) < 38 or pkt[12:14] != b"\x08\x00" or pkt[14] != 0x45 or pkt[23] != 17:
        return XDP_PASS
    return XDP_DROP if struct.unpack_from("!H", pkt, 36)[0] == PORT else XDP_PASS


# packets longer than 100 bytes are shot; shorter ones get their MAC addresses swapped
TC_SWAP_MACS = f"""
    r6 = *(u32 *)(r1 + 0)
    r0 = {TC_ACT_SHOT}
    if r6 > 100 goto out
    r2 = *(u32 *)(r1 + 80)
    r1 = *(u32 *)(r1 + 76)
    r3 = r1
    r3 += 12
    r0 = {TC_ACT_OK}
    if r3 > r2 goto out
    r4 = *(u32 *)(r1 + 0)
    r5 = *(u16 *)(r1 + 4)
    r3 = *(u32 *)(r1 + 6)
    *(u32 *)(r1 + 0) = r3
    r3 = *(u16 *)(r1 + 10)
    *(u16 *)(r1 + 4) = r3
    *(u32 *)(r1 + 6) = r4
    *(u16 *)(r1 + 10) = r5
out:
    exit
"""


def tc_swap_macs_model(pkt: bytes) -> tuple[int, bytes]:
    if len(pkt) > 100:
        return TC_ACT_SHOT, pkt
    return TC_ACT_OK, pkt[6:12] + pkt[0:6] + pkt[12:]


# socket filters see the packet from the network header on (the kernel pulls the
# Ethernet header): keep the UDP destination port's value in bytes, drop the rest
SOCKET_UDP_DPORT = """
    r6 = r1
    r0 = *(u8 *)skb[9]
    if r0 != 17 goto drop
    r0 = *(u16 *)skb[22]
    exit
drop:
    r0 = 0
    exit
"""


def socket_udp_dport_model(pkt: bytes) -> int:
    l3 = pkt[14:]
    if len(l3) < 24 or l3[9] != 17:  # a legacy load beyond the packet ends the program with 0
        return 0
    return struct.unpack_from("!H", l3, 22)[0]


def skb_test_run_accepts(pkt: bytes) -> bool:
    """The kernel builds an skb only if an IPv4/IPv6 ethertype is followed by a whole header."""
    need = {b"\x08\x00": 14 + 20, b"\x86\xdd": 14 + 40}.get(pkt[12:14], 14)
    return len(pkt) >= need


macs = st.binary(min_size=12, max_size=12)
ethertypes = st.sampled_from([b"\x08\x00", b"\x86\xdd"]) | st.binary(min_size=2, max_size=2)


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    """Ethernet frames, mostly IPv4 with mostly UDP to PORT, sometimes anything."""
    eth = draw(macs) + draw(ethertypes)
    ip = bytearray(draw(st.binary(min_size=20, max_size=20)))
    ip[0] = draw(st.sampled_from([0x45, 0x46, ip[0]]))
    ip[9] = draw(st.sampled_from([17, 6, ip[9]]))
    udp = struct.pack("!HH", draw(st.integers(0, 65535)), draw(st.sampled_from([PORT, 53]) | st.integers(0, 65535)))
    payload = draw(st.binary(max_size=120))
    whole = eth + bytes(ip) + udp + payload
    return whole[: draw(st.integers(14, len(whole)))]


@pytest.fixture(scope="module")
def xdp_filter():
    with ProgramSpec(ProgType.XDP, parse(XDP_UDP_FILTER, "xdp_filter.s")).load() as p:
        yield p


@pytest.fixture(scope="module")
def tc_swap():
    with ProgramSpec(ProgType.SCHED_CLS, parse(TC_SWAP_MACS, "tc_swap.s")).load() as p:
        yield p


@pytest.fixture(scope="module")
def socket_filter():
    with ProgramSpec(ProgType.SOCKET_FILTER, parse(SOCKET_UDP_DPORT, "sock.s")).load() as p:
        yield p


@settings(max_examples=300, deadline=None)
@given(packets())
def test_xdp_filter_matches_model(xdp_filter, pkt: bytes) -> None:
    run = xdp_filter.test_run(pkt)
    assert run.retval == xdp_udp_filter_model(pkt)
    assert run.data == pkt


@settings(max_examples=300, deadline=None)
@given(packets())
def test_tc_rewrite_matches_model(tc_swap, pkt: bytes) -> None:
    if not skb_test_run_accepts(pkt):
        with pytest.raises(SyscallError, match="Invalid argument"):
            tc_swap.test_run(pkt)
        return
    run = tc_swap.test_run(pkt)
    assert (run.retval, run.data) == tc_swap_macs_model(pkt)


@settings(max_examples=300, deadline=None)
@given(packets())
def test_socket_filter_matches_model(socket_filter, pkt: bytes) -> None:
    if not skb_test_run_accepts(pkt):
        with pytest.raises(SyscallError, match="Invalid argument"):
            socket_filter.test_run(pkt)
        return
    assert socket_filter.test_run(pkt).retval == socket_udp_dport_model(pkt)


def test_repeat_reports_duration(xdp_filter) -> None:
    run = xdp_filter.test_run(bytes(64), repeat=1000)
    assert run.retval == XDP_PASS and run.duration > 0


def test_xdp_ctx_in_and_out(xdp_filter) -> None:
    # struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    ctx = struct.pack("=6I", 0, 64, 0, 0, 0, 0)
    run = xdp_filter.test_run(bytes(64), ctx=ctx)
    assert run.retval == XDP_PASS
    assert struct.unpack("=6I", run.ctx)[:2] == (0, 64)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_raw_tracepoint_sees_ctx_args(a: int, b: int) -> None:
    source = "r2 = *(u64 *)(r1 + 8)\nr1 = *(u64 *)(r1 + 0)\nr0 = r1\nr0 += r2\nexit\n"
    with ProgramSpec(ProgType.RAW_TRACEPOINT, parse(source, "raw_tp.s")).load() as p:
        run = p.test_run(ctx=struct.pack("=QQ", a, b))
    assert run.retval == (a + b) & 0xFFFF_FFFF


def test_short_packet_is_refused_with_advice(xdp_filter) -> None:
    with pytest.raises(SyscallError, match="need a 14-byte Ethernet header"):
        xdp_filter.test_run(bytes(4))
