"""Random expressions, libpcap's verdict: hypothesis combines primitives with and/or/not and
parentheses (so precedence, qualifier order and VLAN shifts meet in ways no list foresees),
libpcap compiles each, and on a batch of frames our XDP program must agree with libpcap's
classic program run by the kernel on an AF_PACKET socket, frame by frame.  A refusal of
libpcap's (``net 192.168.0.0/8``: host bits set) must be ours too.

The oracle is libpcap's unoptimised program (``tcpdump -O``). Its optimiser drops loads whose
value cannot change the verdict, which on a truncated frame changes it: in ``net 10.0.0.0/16 or
not vlan 100`` (after an earlier ``vlan``), a 28-byte RARP frame's addresses lie past its end,
and the unoptimised program (like ours) rejects it while the optimised one, knowing that
``not vlan 100`` holds for RARP anyway, never loads them and accepts.  The fixed expressions of
``test_against_libpcap.py`` are judged against the optimised program, and agree.
"""

from __future__ import annotations

import os
import random
import socket

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pybpfasm import pcapfilter
from pybpfasm.dsl import Collection
from pybpfasm.link.netns import entered

from . import libpcap
from .frames import IPV4, IPV6, MACS, PORTS, VIDS, frame
from .test_against_libpcap import _accepted, packet_program

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loads BPF programs, builds a namespace)"),
    pytest.mark.skipif(libpcap.tcpdump() is None, reason="tcpdump (libpcap, the oracle) is not installed"),
]

EXPRESSIONS_PER_EXAMPLE = 12
FRAMES_PER_EXAMPLE = 300


def _v4(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


def _v6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


v4, v6, mac = st.sampled_from(IPV4).map(_v4), st.sampled_from(IPV6).map(_v6), st.sampled_from(MACS).map(_mac)
port, vid = st.sampled_from(PORTS), st.sampled_from(VIDS)
byte = st.integers(0, 255)
direction = st.sampled_from(["", "src ", "dst ", "src or dst ", "src and dst "])
primitive = st.one_of(
    st.sampled_from(["ip", "ip6", "arp", "rarp", "tcp", "udp", "sctp", "icmp", "icmp6", "igmp", "pim", "vlan",
                     "ether broadcast", "ether multicast", "ip multicast", "ip6 multicast"]),
    st.builds("{}host {}".format, direction, v4),
    st.builds("{}net {}/{}".format, direction, st.sampled_from(["10.0.0.0", "192.168.0.0"]), st.sampled_from([8, 16])),
    st.builds("ip6 {}host {}".format, direction, v6),
    st.builds("{}{}port {}".format, st.sampled_from(["", "tcp ", "udp ", "sctp "]), direction, port),
    st.builds("{}portrange {}-{}".format, direction, port, port),
    st.builds("ether {}host {}".format, st.sampled_from(["", "src ", "dst "]), mac),
    st.builds("vlan {}".format, vid),
    st.builds("{} proto {}".format, st.sampled_from(["ip", "ip6"]), st.sampled_from([1, 6, 17, 58, 132])),
    st.builds("{} {}".format, st.sampled_from(["less", "greater"]), st.integers(14, 120)),
    st.builds("tcp[tcpflags] & {} != 0".format, st.sampled_from([1, 2, 4, 16, 0x12])),
    st.builds("ip[{}] & {} = {}".format, st.integers(0, 19), byte, byte),
    st.builds("icmp[icmptype] = {}".format, st.sampled_from([0, 3, 8, 11])),
    st.builds("{}[{}:2] > {}".format, st.sampled_from(["udp", "tcp", "ip6", "ether"]), st.integers(0, 20),
              st.integers(0, 0xFFFF)),
    st.builds("ether[{}] = {}".format, st.integers(0, 30), byte),
)
expression = st.recursive(primitive, lambda inner: st.one_of(
    st.builds("{} and {}".format, inner, inner),
    st.builds("{} or {}".format, inner, inner),
    st.builds("not {}".format, inner),
    st.builds("({})".format, inner),
), max_leaves=6)
seen = {"expressions": 0, "frames": 0, "refused by both": 0}


@pytest.fixture(scope="module")
def sender(veth):
    ns = veth[0]
    with entered(ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        sock.bind(("ppf-a", 0))
    yield ns, sock
    sock.close()


@settings(max_examples=8, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(texts=st.lists(expression, min_size=EXPRESSIONS_PER_EXAMPLE, max_size=EXPRESSIONS_PER_EXAMPLE, unique=True),
       seed=st.integers(0, 2**64 - 1))
def test_random_expressions_agree_with_libpcap(sender, tmp_path_factory, texts, seed):
    ns, sock = sender
    directory = str(tmp_path_factory.getbasetemp())
    rng = random.Random(seed)
    batch = [frame(rng) for _ in range(FRAMES_PER_EXAMPLE)]
    errors = {t: libpcap.compile_error(t, directory, optimize=False) for t in texts}
    for t, error in errors.items():
        if error is not None:
            with pytest.raises(pcapfilter.FilterError):
                pcapfilter.compile(t)
    refused = [t for t in texts if errors[t] is not None]
    texts = [t for t in texts if errors[t] is None]
    with Collection() as coll:
        ours = {t: coll.load(packet_program("xdp", i, pcapfilter.compile(t))) for i, t in enumerate(texts)}
        with entered(ns):
            sockets = {t: libpcap.FilteredSocket("ppf-a", libpcap.classic_program(t, directory, optimize=False))
                       for t in texts}
        try:
            for data in batch:
                sock.send(data)
            mismatches = []
            for t in texts:
                want = _accepted(batch, sockets[t].drain())
                for data, w in zip(batch, want):
                    got = ours[t].test_run(data, data_out_size=0).retval == 1
                    if got != w:
                        mismatches.append(f"{t!r}: libpcap {w}, ours {got}: {data.hex()}")
        finally:
            for s in sockets.values():
                s.close()
    assert not mismatches, "\n".join(mismatches[:10])
    seen["refused by both"] += len(refused)
    seen["expressions"] += len(texts)
    seen["frames"] += len(batch)


def test_enough_random_expressions_were_judged():
    assert seen["expressions"] >= 70 and seen["frames"] >= 2400, seen
