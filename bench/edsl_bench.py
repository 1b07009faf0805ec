"""Instruction counts of eDSL programs against clang -O2 on the same logic in C.

Goal (issue 5): an eDSL program is at most 1.2x the size LLVM makes of its C twin.
Twins: the 5-tuple XDP filter (bench/corpus/filter5.c) and the kfree_skb drop-event
builder (bench/corpus/drop_event.c).  filter5.c reads its filter values from
``volatile const`` globals (libbpf-style run-time configuration, one map load
each); it is also compiled with ``volatile`` defined away, so that clang folds
the values as the eDSL does at build time: that is the like-for-like count.
Sizes are in 8-byte instruction slots (``ld_imm64`` takes two), as the kernel counts.
Both eDSL programs are loaded once, so the counts are of programs the verifier accepts.
Run (as root): python bench/edsl_bench.py [-v]   (-v prints both listings)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from pybpfasm.dsl import Collection, Record, RingBuf, be16, char, tracepoint, u16, u32, u64, xdp
from pybpfasm.isa import decode
from pybpfasm.text import format_program

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.isa.llvm import compile_c

GOAL = 1.2
CORPUS = Path(__file__).parent / "corpus"
ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q = 0x0800, 0x86DD, 0x8100
IPPROTO_TCP, IPPROTO_UDP = 6, 17


# -- the 5-tuple filter (filter5.c's logic and its option values) ---------------------------


class Want(NamedTuple):
    """filter5.c's want_* values: addresses are be32 words (IPv6 compares the last one)."""

    src: int = 0x0A000001
    dst: int = 0x0A000002
    sport: int = 1234
    dport: int = 80
    proto: int = IPPROTO_UDP


class Ports(Record):
    sport: be16
    dport: be16


@xdp
def filter5(b, ctx, want: Want) -> None:
    """1 (drop) when the packet matches or is cut short, 2 (pass) otherwise, as in C."""
    pkt = ctx.packet()
    with pkt.header("struct ethhdr") as eth:
        proto = b.var(eth.h_proto)
        with b.if_(proto == ETH_P_8021Q):
            with pkt.header("struct vlan_hdr") as vlan:
                proto.set(vlan.h_vlan_encapsulated_proto)
            with b.else_():
                b.return_(1)
        l4proto = b.var(0, u32)
        with b.if_(proto == ETH_P_IP):
            with pkt.header("struct iphdr", advance=False) as ip:
                with b.if_((ip.saddr != want.src) | (ip.daddr != want.dst)):
                    b.return_(2)
                l4proto.set(ip.protocol)
                pkt.skip(ip.ihl * 4)
            with b.else_():
                b.return_(1)
        with b.else_():
            with b.if_(proto != ETH_P_IPV6):
                b.return_(2)
            with pkt.header("struct ipv6hdr") as ip6:
                with b.if_((ip6.saddr.in6_u.u6_addr32[3] != want.src)
                           | (ip6.daddr.in6_u.u6_addr32[3] != want.dst)):
                    b.return_(2)
                l4proto.set(ip6.nexthdr)
            with b.else_():
                b.return_(1)
        with b.if_(l4proto != want.proto):
            b.return_(2)
        if want.proto in (IPPROTO_TCP, IPPROTO_UDP):  # known at build time, as in folded C
            with pkt.header(Ports) as ports, b.if_((ports.sport != want.sport)
                                                   | (ports.dport != want.dport)):
                b.return_(2)
    b.return_(1)


# -- the drop-event builder -------------------------------------------------------------------


class DropEvent(Record):
    ts: u64
    skbaddr: u64
    location: u64
    pid: u32
    reason: u32
    protocol: u16
    comm: char[16]


events = RingBuf(DropEvent, 1 << 20, name="events")


@tracepoint("skb", "kfree_skb")
def drop_event(b, ctx) -> None:
    with events.reserve(b) as ev:
        ev.ts = b.ktime_get_ns()
        ev.skbaddr = ctx.skbaddr
        ev.location = ctx.location
        ev.pid = b.get_current_pid_tgid() >> 32
        ev.reason = ctx.reason
        ev.protocol = ctx.protocol
        b.get_current_comm(ev.comm.addr(), 16)


# -- measuring ----------------------------------------------------------------------------------


def edsl_slots(pdef, opts=None) -> tuple[int, str]:
    """Slots and listing of an eDSL program, after checking that the kernel loads it."""
    with Collection() as coll:
        slots = len(coll.load(pdef, opts).spec.bytecode) // 8
    return slots, format_program(pdef.build(opts)[0])


def clang_slots(source: Path, *, fold_volatile: bool = False) -> tuple[int, str]:
    """Slots and listing of the one program in *source* (clang -O2, -mcpu=v3)."""
    if fold_volatile:
        with tempfile.TemporaryDirectory() as tmp:
            folded = Path(tmp, source.name)
            folded.write_text(f'#define volatile\n#include "{source.resolve()}"\n')
            sections = compile_c(folded)
    else:
        sections = compile_c(source)
    [code] = [c for name, c in sections.items() if name != ".text" or len(sections) == 1]
    return len(code) // 8, format_program(decode(code))


def main() -> int:
    verbose = "-v" in sys.argv[1:]
    rows = [
        ("5-tuple filter (C consts folded)", edsl_slots(filter5, Want()),
         clang_slots(CORPUS / "filter5.c", fold_volatile=True), True),
        ("5-tuple filter (C volatile consts)", edsl_slots(filter5, Want()),
         clang_slots(CORPUS / "filter5.c"), False),
        ("drop-event builder", edsl_slots(drop_event), clang_slots(CORPUS / "drop_event.c"), True),
    ]
    print(f"{'program':<36} {'eDSL':>5} {'clang':>6} {'ratio':>6}   goal <= {GOAL}x")
    failed = False
    for name, (ours, our_text), (llvm, llvm_text), judged in rows:
        ratio = ours / llvm
        verdict = ("PASS" if ratio <= GOAL else "FAIL") if judged else "(reference)"
        failed |= judged and ratio > GOAL
        print(f"{name:<36} {ours:>5} {llvm:>6} {ratio:>6.2f}   {verdict}")
        if verbose or (judged and ratio > GOAL):
            print(f"\n--- eDSL: {name}\n{our_text}\n--- clang -O2: {name}\n{llvm_text}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
