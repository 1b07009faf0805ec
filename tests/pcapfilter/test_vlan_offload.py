"""skbs whose VLAN tag the kernel holds beside the bytes (``skb->vlan_tci``): the skb path
gives libpcap's verdict for a live Linux capture, where the first ``vlan`` is true for such
a tag and moves no offset, and everything else reads the bytes as they are.

A tc egress program on the veth gives each even-length frame a tag out of the packet (VID
10, or 100 for lengths 2 mod 4) with ``bpf_skb_vlan_push``, as a VLAN-offloading NIC
leaves it; some frames also carry tags in their bytes (QinQ then). libpcap's program is
compiled for the live interface (``tcpdump -i ppf-a -ddd``: classic BPF's ancillary VLAN
loads) and run by the kernel on AF_PACKET sockets; ours runs on the ``net_dev_start_xmit``
raw tracepoint (the skb path) and as tc egress programs after the tagger (``__sk_buff``'s
``vlan_present`` and ``vlan_tci``), on the same skbs.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess

import pytest

from pybpfasm import pcapfilter
from pybpfasm.dsl import Collection, ProgramDef
from pybpfasm.link.netns import entered

from . import libpcap
from .frames import frame
from .test_against_libpcap import _accepted, record_verdict, seen, skb_program, verdicts

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loads BPF programs, builds a namespace)"),
    pytest.mark.skipif(libpcap.tcpdump() is None, reason="tcpdump (libpcap, the oracle) is not installed"),
]

EXPRESSIONS = ["vlan", "vlan 10", "vlan 100", "not vlan", "vlan and ip", "vlan 10 and udp port 53",
               "vlan and vlan", "vlan 10 and vlan 5", "vlan and host 10.0.0.1", "ip", "tcp port 80",
               "ether[12:2] = 0x8100", "vlan and tcp[tcpflags] & tcp-syn != 0", "len > 60",
               "vlan 100 or arp", "vlan and ip6 and udp"]
FRAMES = 1000
TCX_NEXT = -1  # run the next program of the chain (TC_ACT_UNSPEC)


def tag_out_of_band(b, ctx):
    """Even-length frames get a tag beside their bytes: VID 100 for lengths 2 mod 4, else 10."""
    length = b.load(ctx.len)
    with b.if_((length & 1) == 0):
        vid = b.var(10)
        with b.if_((length & 3) == 2):
            vid.set(100)
        b.skb_vlan_push(ctx.value, socket.htons(0x8100), vid)
    b.return_(TCX_NEXT)


def tc_program(index: int, flt: pcapfilter.Filter) -> ProgramDef:
    def record(b, ctx):
        record_verdict(b, index, flt.matches_packet(b, ctx))
        b.return_(TCX_NEXT)

    return ProgramDef(record, "tc", name=f"ppf_tc{index}")


def live_program(ns: str, expr: str) -> list[tuple[int, int, int, int]]:
    out = subprocess.run(["ip", "netns", "exec", ns, "tcpdump", "-i", "ppf-a", "-ddd", expr],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return [tuple(int(x) for x in line.split()) for line in out[1:1 + int(out[0])]]  # type: ignore[misc]


def test_offloaded_tags_give_libpcaps_live_verdict(veth):
    ns, ifindex, netns = veth
    count = len(EXPRESSIONS)
    assert 2 * count <= 128
    batch_rng = random.Random(16)
    frames = [frame(batch_rng) for _ in range(FRAMES)]
    with Collection() as coll:
        tagger = ProgramDef(tag_out_of_band, "tc", name="ppf_tagger")
        coll.load(tagger)
        coll.attach(tagger, interface="ppf-a", direction="egress", netns=ns)
        for i, e in enumerate(EXPRESSIONS):
            pdef = skb_program(i, pcapfilter.compile(e), ifindex, netns)
            coll.load(pdef)
            coll.attach(pdef)
            pdef = tc_program(count + i, pcapfilter.compile(e))
            coll.load(pdef)
            coll.attach(pdef, interface="ppf-a", direction="egress", netns=ns)
        with entered(ns):
            sockets = [libpcap.FilteredSocket("ppf-a", live_program(ns, e)) for e in EXPRESSIONS]
            sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            sender.bind(("ppf-a", 0))
        try:
            mismatches, tagged = [], 0
            for start in range(0, FRAMES, 100):
                batch = frames[start:start + 100]
                tagged += sum(len(f) % 2 == 0 for f in batch)
                for data in batch:
                    sender.send(data)
                counters, slots = coll.map(seen), coll.map(verdicts)
                for i, expr in enumerate(EXPRESSIONS):
                    want = _accepted(batch, sockets[i].drain())
                    for path, k in (("skb", i), ("tc", count + i)):
                        assert counters[k] == len(batch), (path, expr)
                        got = [v == 1 for v in slots[k][:len(batch)]]
                        mismatches += [f"{expr!r}: libpcap {w}, ours ({path}) {g}: {d.hex()}"
                                       for d, w, g in zip(batch, want, got) if w != g]
                        counters[k] = 0
        finally:
            for s in (*sockets, sender):
                s.close()
    assert not mismatches, "\n".join(mismatches[:10])
    assert tagged > FRAMES // 3
