"""``pybpfasm ovs-dropmon``: packets dropped inside Open vSwitch's kernel datapath.

Every packet the ``openvswitch`` module frees as a drop becomes one event:
why (``enum ovs_drop_reason``, named from the module's BTF, on 6.6+ kernels
whose ``skb:kfree_skb`` carries subsystem drop reasons), where (the function
of the module that freed it), the datapath and input port (from the packet's
``OVS_CB``, laid out by the module's BTF), the flow that was executing (its
UFID, as ``ovs-dpctl dump-flows --more`` prints it) and the packet's fields.

A drop is a ``kfree_skb`` of a packet (an skb with a device: the module
also frees netlink messages) whose reason belongs to the openvswitch
subsystem or whose caller lies in the module.  Kernels before 6.6 end a flow whose
actions do not output the packet (``actions:drop``, a meter over its rate)
with ``consume_skb`` in ``do_execute_actions``; 6.6+ report the same packets
as ``OVS_DROP_LAST_ACTION``/``OVS_DROP_METER``, so on older kernels those
``consume_skb`` calls count as drops too, named by their location.

Filters (``--dp``, ``--port``, ``--src``...) are compiled into the program.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from pybpfasm.clock import WallClock
from pybpfasm.dsl import Events, PerCPUArray, ProgramDef, Record, char, kprobe, kretprobe, u8, u16, u32, u64
from pybpfasm.errors import UsageError

from .common import options as types
from .common import ovs, packet
from .common.hooks import unavailable
from .common.packet import Packet, PacketFilter, bytes_cond
from .common.reasons import drop_reasons
from .common.tool import Tool

#: OvsDrop.flags
F_REASON = 1  #: the kernel gave a drop reason
F_CONSUMED = 2  #: freed by consume_skb at the end of the actions (kernels before 6.6)
F_VPORT = 4  #: datapath and input port read from OVS_CB (module BTF)
F_FLOW = 8  #: the flow that was executing is known


class OvsDrop(Record):
    ts: u64
    location: u64
    pkt: Packet
    ufid: u32[4]
    ifname: char[16]
    dp: char[16]
    reason: u32
    in_port: u16
    flags: u8


class CurrentFlow(Record):
    """The flow this CPU looked up last (``ovs_flow_tbl_lookup_stats`` returned it)."""

    flow: u64


@dataclass(frozen=True)
class Options:
    filter: PacketFilter = field(default_factory=PacketFilter)
    dp: bytes | None = None
    port: bytes | None = None
    #: the kernel's openvswitch drop-reason subsystem (None: no subsystem reasons)
    subsystem: int | None = None
    #: [start, end) of the module's code, and of do_execute_actions
    module: tuple[int, int] = (0, 0)
    actions: tuple[int, int] = (0, 0)
    vport: bool = False  #: module BTF is there: datapath, port and flow are read
    flows: bool = False  #: ovs_flow_tbl_lookup_stats can be probed


events = Events(OvsDrop, 1 << 20, name="ovsdrop_events")
current = PerCPUArray(CurrentFlow, 1, name="ovsdrop_flow")


def _within(value, bounds: tuple[int, int]):
    return (value >= bounds[0]) & (value < bounds[1])


def _return_unless(b, conds: list) -> None:
    for c in conds:
        with b.if_(~c):
            b.return_(0)


def _vport_fields(b, skb_ref, ev) -> None:
    """Datapath name, input port number and its device from ``OVS_CB(skb)->input_vport``
    (fields read one at a time, names straight into the event: the stack is small)."""
    cb = skb_ref.cb.addr().cast(ovs.kernel_type("struct ovs_skb_cb")).deref()
    vport_ptr = cb.input_vport.rvalue()
    with b.if_(vport_ptr != 0):
        vport = vport_ptr.non_null().deref()
        ev.in_port = vport.port_no.rvalue()
        ev.flags = ev.flags | F_VPORT
        b.probe_read(ev.ifname, vport.dev.rvalue().deref().name)
        # the datapath is named after its local port, port 0, first in hash bucket 0
        first = vport.dp.rvalue().deref().ports.rvalue().cast("struct hlist_head").deref().first.rvalue()
        with b.if_(first != 0):
            offset = ovs.kernel_type("struct vport").member("dp_hash_node").offset
            local = first.at(-offset).cast(ovs.kernel_type("struct vport")).deref()
            b.probe_read(ev.dp, local.dev.rvalue().deref().name)


def _flow_fields(b, ev) -> None:
    with current.lookup(b, 0) as slot, b.if_(slot.flow != 0):
        fid = slot.flow.rvalue().cast(ovs.kernel_type("struct sw_flow")).deref().id
        with b.if_(fid.ufid_len.rvalue() != 0):
            b.probe_read(ev.ufid, fid.ufid)
            ev.flags = ev.flags | F_FLOW


def drop(b, ctx_value, skb_ptr, protocol, reason, location, consumed: bool, opts: Options) -> None:
    """The body of every drop program: is it OVS's, does it pass the filters, send it."""
    if consumed:
        _return_unless(b, [_within(location, opts.actions)])
    else:
        mine = _within(location, opts.module)
        if reason is not None and opts.subsystem is not None:
            mine = mine | ((reason >> ovs.SUBSYS_SHIFT) == opts.subsystem)
        _return_unless(b, [mine])
    ev = b.stack(OvsDrop, "the drop event")
    b.zero(ev)
    skb_ref = skb_ptr.cast("struct sk_buff").deref()
    dev = skb_ref.dev.rvalue()
    with b.if_(dev == 0):  # no device: a netlink message the module frees, not a packet
        b.return_(0)
    b.probe_read(ev.ifname, dev.deref().name)
    if opts.vport:
        _vport_fields(b, skb_ref, ev)
    conds = []
    if opts.port is not None:
        conds.append(bytes_cond(ev.ifname, opts.port))
    if opts.dp is not None:
        conds.append(bytes_cond(ev.dp, opts.dp))
    _return_unless(b, conds)
    packet.parse(b, packet.read_skb(b, skb_ref), protocol, ev.pkt)
    _return_unless(b, opts.filter.conditions(ev.pkt))
    if opts.flows:
        _flow_fields(b, ev)
    ev.ts = b.ktime_get_ns()
    ev.location = location
    if reason is not None:
        ev.reason = reason
        ev.flags = ev.flags | F_REASON
    if consumed:
        ev.flags = ev.flags | F_CONSUMED
    events.output(b, ctx_value, ev)


def on_kfree_skb(b, ctx, opts: Options):
    reason = ctx.reason.rvalue() if ctx.has_field("reason") else None
    drop(b, ctx.value, ctx.skbaddr.rvalue(), ctx.protocol, reason, ctx.location.rvalue(), False, opts)


@kprobe("consume_skb")
def on_consume_skb(b, ctx, opts: Options):
    skb = ctx.arg(0)
    drop(b, ctx.value, skb, skb.cast("struct sk_buff").protocol.to_host(), None, ctx.caller,
         True, opts)


@kretprobe("ovs_flow_tbl_lookup_stats")
def on_flow_lookup(b, ctx, opts: Options):
    with current.lookup(b, 0) as slot:
        slot.flow = ctx.ret


kfree_program = ProgramDef(on_kfree_skb, "tracepoint", ("skb", "kfree_skb"), name="ovsdrop_kfree")


# -- user space ----------------------------------------------------------------------------
def ufid_text(words: list[int]) -> str:
    """A UFID as OVS prints it (``odp_format_ufid``: the UUID layout of four host-order words)."""
    a, b, c, d = words
    return f"{a:08x}-{b >> 16:04x}-{b & 0xffff:04x}-{c >> 16:04x}-{c & 0xffff:04x}{d:08x}"


class OvsDropMon(Tool):
    """Every packet the OVS kernel datapath drops: why, where, which flow."""

    tracing = "packet drops in the openvswitch module"
    events = events

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dp", type=types.ifname, metavar="NAME",
                            help="only drops in this datapath (e.g. ovs-system)")
        parser.add_argument("--port", type=types.ifname, metavar="NAME",
                            help="only drops of packets that entered by this port (device name)")
        PacketFilter.add_arguments(parser, "drops")

    def unavailable(self) -> str | None:
        return ovs.unavailable()

    def options(self, args: argparse.Namespace) -> Options:
        filt = PacketFilter.from_args(args)
        if ovs.unavailable() is not None:
            return Options(filter=filt, dp=args.dp, port=args.port)
        has_btf = ovs.module_btf() is not None
        if args.dp is not None and not has_btf:
            raise UsageError(f"--dp: datapaths are named from module BTF, which this kernel "
                             f"lacks ({ovs.MODULE_BTF})")
        code = ovs.code()
        subsystem = ovs.subsystem() if ovs.drop_reason_names() else None
        return Options(filter=filt, dp=args.dp, port=args.port, subsystem=subsystem,
                       module=(code.start, code.end), actions=code.function("do_execute_actions"),
                       vport=has_btf, flows=has_btf and unavailable(on_flow_lookup) is None)

    def programs(self, opts: Options) -> list[ProgramDef]:
        progs = [kfree_program]
        if opts.subsystem is None:
            progs.append(on_consume_skb)
        if opts.flows:
            progs.insert(0, on_flow_lookup)
        return progs

    def notes(self, coll: Any, opts: Options) -> list[str]:
        lines = []
        if opts.subsystem is None:
            lines.append("this kernel names no OVS drop reasons (6.6+): drops are named by location; "
                         "consume_skb in do_execute_actions counts as a drop")
        if not opts.vport:
            lines.append(f"no module BTF ({ovs.MODULE_BTF}): no datapath, port number or flow")
        return lines

    def prepare(self, coll: Any, opts: Options) -> None:
        from pybpfasm.kernel import Kallsyms

        self.kallsyms = Kallsyms.load()
        self.wall = WallClock()
        self.ovs_reasons = ovs.drop_reason_names() or {}
        self.core_reasons = drop_reasons() or {}

    def _reason(self, ev: OvsDrop) -> str | None:
        if not ev.flags & F_REASON:
            return None
        return self.ovs_reasons.get(ev.reason) or self.core_reasons.get(ev.reason) or str(ev.reason)

    def row(self, ev: OvsDrop) -> dict[str, Any]:
        pkt = packet.fields(ev.pkt)
        return {
            "time": round(self.wall(ev.ts), 6),
            "dp": ev.dp or None,
            "port": ev.ifname or None,
            "in_port": ev.in_port if ev.flags & F_VPORT else None,
            "reason": self._reason(ev),
            "location": self.kallsyms.symbolize(ev.location) if ev.location else None,
            "consumed": bool(ev.flags & F_CONSUMED),
            "ufid": ufid_text(ev.ufid) if ev.flags & F_FLOW else None,
            **{k: pkt[k] for k in ("src", "dst", "proto", "sport", "dport", "icmp_type", "icmp_code")},
        }

    def header(self) -> str:
        return f"{'TIME':<15} {'DP':<12} {'PORT':<12} {'REASON':<20} {'PROTO':<5} PACKET / LOCATION"

    def text(self, d: dict[str, Any]) -> str:
        t = time.strftime("%H:%M:%S", time.localtime(d["time"])) + f".{int(d['time'] * 1e6) % 1000000:06d}"
        src = f"{d['src']}" + (f":{d['sport']}" if d["sport"] is not None else "")
        dst = f"{d['dst']}" + (f":{d['dport']}" if d["dport"] is not None else "")
        port = d["port"] or "-"
        if d["in_port"] is not None:
            port = f"{port}({d['in_port']})"
        flow = f" ufid:{d['ufid']}" if d["ufid"] else ""
        return (f"{t:<15} {d['dp'] or '-':<12} {port:<12} {d['reason'] or '-':<20} "
                f"{d['proto'] or '-':<5} {src} -> {dst} at {d['location'] or '?'}{flow}")


tool = OvsDropMon()

__all__ = ["OvsDrop", "tool", "ufid_text"]
