"""BPF programs the link tests attach, assembled from instructions with layouts from kernel BTF."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from pybpfasm.btf import BTF, Kind, Step
from pybpfasm.helpers import helper_id
from pybpfasm.isa import (
    R0,
    R1,
    R2,
    R3,
    R6,
    R7,
    R10,
    Add,
    Instruction,
    JEq,
    JGt,
    JNe,
    Mov,
    Size,
    call,
    exit_,
    load_mem,
)
from pybpfasm.link import probes, tp_btf_spec
from pybpfasm.maps import Map
from pybpfasm.prog import Program, ProgramSpec
from pybpfasm.sys import AttachType, ProgType
from tests.counting import counter, increment

__all__ = ["counter", "drop_counter", "every_packet_counter", "tc_options", "udp_port_counter"]

#: from a freed sk_buff to the inode number of its device's network namespace
SKB_NETNS_INUM = "dev.nd_net.net.ns.inum"
_SIZES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}


def epilogue(retval: int) -> list[Instruction]:
    """``out: r0 = retval; exit``"""
    return [replace(Mov.imm(R0, retval), symbol="out"), exit_()]


def load_path(reg: int, steps: Sequence[Step], size: int, probe_read: bool) -> list[Instruction]:
    """Follow ``steps`` from the pointer in ``reg`` (r6-r9); leaves the field's value in ``reg``.

    ``probe_read`` copies each step with bpf_probe_read_kernel (tracepoint, raw_tp);
    otherwise the loads are direct (BTF-typed pointers: tp_btf).
    """
    out: list[Instruction] = []
    for step in steps:
        width = 8 if step.deref else size
        if probe_read:
            out += [Mov.reg(R1, R10), Add.imm(R1, -16), Mov.imm(R2, width),
                    Mov.reg(R3, reg), Add.imm(R3, step.offset),
                    call(helper_id("probe_read_kernel")),
                    load_mem(reg, R10, -16, _SIZES[width])]
        else:
            out.append(load_mem(reg, reg, step.offset, _SIZES[width]))
        if step.deref:
            out.append(JEq.imm(reg, 0, "out"))
    return out


def raw_tp_arg_index(tracepoint: str, c_type: str) -> int:
    """Position of the first argument of type ``c_type`` in a raw tracepoint's context."""
    btf = BTF.kernel()
    typedef = btf.type(btf.lookup(f"btf_trace_{tracepoint}", [Kind.TYPEDEF]))
    proto = btf.type(btf.type(typedef.type_id).type_id)  # typedef -> pointer -> func proto
    names = [btf.type_name(p.type_id) for p in proto.params]
    return names.index(c_type) - 1  # the first parameter is the tracepoint's private data


def drop_counter(kind: str, netns_inum: int, count: Map) -> Program:
    """Counts kfree_skb(reason NO_SOCKET) of packets in the namespace ``netns_inum``.

    ``kind`` is ``tracepoint``, ``raw_tp`` or ``tp_btf``.
    """
    btf = BTF.kernel()
    no_socket = btf.enum("skb_drop_reason")["SKB_DROP_REASON_NO_SOCKET"]
    inum = btf.field("sk_buff", SKB_NETNS_INUM)
    if kind == "tracepoint":
        ctx = btf.trace_event("kfree_skb")
        reason = (ctx.field("reason").offset, _SIZES[ctx.field("reason").size])
        skb = ctx.field("skbaddr").offset
    else:
        reason = (8 * raw_tp_arg_index("kfree_skb", "enum skb_drop_reason"), Size.DW)
        skb = 8 * raw_tp_arg_index("kfree_skb", "struct sk_buff *")
    insns = [
        Mov.reg(R6, R1),
        load_mem(R7, R6, reason[0], reason[1]),
        JNe.imm(R7, no_socket, "out"),
        load_mem(R6, R6, skb, Size.DW),
        JEq.imm(R6, 0, "out"),
        *load_path(R6, inum.steps, inum.size, probe_read=kind != "tp_btf"),
        JNe.imm32(R6, netns_inum, "out"),             # a u32: compare 32 bits (imm is s32)
        *increment(),
        *epilogue(0),
    ]
    options = {"name": f"pbt_drop_{kind}", "maps": {"count": count}}
    if kind == "tp_btf":
        return tp_btf_spec("kfree_skb", insns, **options).load()
    kinds = {"tracepoint": ProgType.TRACEPOINT, "raw_tp": ProgType.RAW_TRACEPOINT}
    return ProgramSpec(kinds[kind], insns, **options).load()


def udp_port_counter(prog_type: ProgType, port: int, count: Map, retval: int,
                     name: str, **spec: object) -> Program:
    """Counts IPv4/UDP packets to ``port`` (XDP or tc context: data/data_end from BTF)."""
    ctx = {ProgType.XDP: "xdp_md", ProgType.SCHED_CLS: "__sk_buff"}[prog_type]
    btf = BTF.kernel()
    data, data_end = btf.field(ctx, "data").offset, btf.field(ctx, "data_end").offset
    eth, ip, udp = 14, 20, 8
    insns = [
        load_mem(R2, R1, data, Size.W),
        load_mem(R3, R1, data_end, Size.W),
        Mov.reg(R1, R2), Add.imm(R1, eth + ip + udp),
        JGt.reg(R1, R3, "out"),
        load_mem(R1, R2, 12, Size.H),                    # h_proto, network order
        JNe.imm(R1, int.from_bytes((0x0800).to_bytes(2, "big"), "little"), "out"),
        load_mem(R1, R2, eth, Size.B),                   # version 4, no options
        JNe.imm(R1, 0x45, "out"),
        load_mem(R1, R2, eth + 9, Size.B),
        JNe.imm(R1, 17, "out"),
        load_mem(R1, R2, eth + ip + 2, Size.H),          # UDP destination port
        JNe.imm(R1, int.from_bytes(port.to_bytes(2, "big"), "little"), "out"),
        *increment(),
        *epilogue(retval),
    ]
    return ProgramSpec(prog_type, insns, maps={"count": count}, name=name, **spec).load()


def every_packet_counter(prog_type: ProgType, count: Map, retval: int, name: str,
                         **spec: object) -> Program:
    """Counts every packet it runs on (socket filters and cgroup programs see only the test's)."""
    return ProgramSpec(prog_type, [*increment(), *epilogue(retval)], maps={"count": count},
                       name=name, **spec).load()


def tc_options(direction: str) -> dict:
    """Load options of a tc program: tcx needs the attach type at load, cls_bpf none."""
    if not probes.tcx_link():
        return {}
    kind = AttachType.TCX_INGRESS if direction == "ingress" else AttachType.TCX_EGRESS
    return {"expected_attach_type": kind}
