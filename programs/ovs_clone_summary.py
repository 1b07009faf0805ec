"""``pybpfasm ovs-clone-summary``: OVS datapath actions counted, and how deep they nest.

Counts every action the kernel datapath executes, by datapath x action type
(OUTPUT, CLONE, SAMPLE, RECIRC, CT, USERSPACE, SET_MASKED...) x
``recirc_id``, at the ``openvswitch:ovs_do_execute_action`` tracepoint
(5.16+), which ``do_execute_actions`` fires for each action, nested ones
(inside ``clone()``, ``sample()``) and deferred ones included.  Action names
come from the module's BTF (``enum ovs_action_attr``).

Per CPU it follows the datapath's nesting the way ``actions.c`` counts it
(kprobes on ``ovs_execute_actions`` and ``clone_execute``): the recursion
level (``exec_actions_level``), actions deferred to the per-CPU FIFO once the
level passes ``OVS_DEFERRED_ACTION_THRESHOLD``, and the packets the kernel
drops at either limit; it warns when a CPU reaches a limit.  The limits are
read from the module's BTF (the sizes of ``struct action_fifo.fifo`` and
``struct action_flow_keys.key``).  ``clone_execute`` takes eight arguments:
``last`` and ``clone_flow_key`` are the seventh and eighth, which x86_64
passes on the stack above the return address.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from pybpfasm.dsl import HashMap, PerCPUArray, ProgramDef, Record, char, kprobe, kretprobe, tracepoint, u32, u64

from .common import ovs
from .common.hooks import unavailable
from .common.summary import Totals
from .common.table import interval_header
from .common.tool import Tool

TRACEPOINT = ("openvswitch", "ovs_do_execute_action")
#: a __data_loc word: the string's offset in the record is in its low 16 bits
DATA_LOC_OFFSET = 0xFFFF


class ActionKey(Record):
    dp: char[16]
    recirc_id: u32
    action: u32


class Nesting(Record):
    """This CPU's datapath state, as actions.c keeps it."""

    level: u32  #: exec_actions_level
    clones: u32  #: one bit per clone_execute() in progress: did it raise the level
    deferred: u32  #: deferred actions queued since the outermost ovs_execute_actions()


class Depth(Record):
    """This CPU's peaks and limit hits since the tool started."""

    peak_level: u32
    peak_deferred: u32
    deferred: u64
    deferred_drops: u64
    recursion_drops: u64


@dataclass(frozen=True)
class Options:
    limits: ovs.Limits | None = None


counts = HashMap(ActionKey, u64, 16384, name="ovsclone_counts")
state = PerCPUArray(Nesting, 1, name="ovsclone_state")
depths = PerCPUArray(Depth, 1, name="ovsclone_depth")


@tracepoint(*TRACEPOINT)
def ovsclone_action(b, ctx, opts: Options):
    key = b.stack(ActionKey, "the count's key")
    b.zero(key)
    where = ctx.value.at(ctx.dp_name.rvalue() & DATA_LOC_OFFSET)
    b.probe_read_kernel_str(key.dp, 16, where)
    key.recirc_id = ctx.recirc_id
    key.action = ctx.action_type
    counts.increment(b, key)


@kprobe("ovs_execute_actions")
def ovsclone_exec(b, ctx, opts: Options):
    with state.lookup(b, 0) as st, depths.lookup(b, 0) as d:
        level = st.level.rvalue() + 1
        st.level = level
        with b.if_(level > d.peak_level):
            d.peak_level = level
        with b.if_(level > opts.limits.recursion):  # the kernel drops the packet
            d.recursion_drops = d.recursion_drops + 1


@kretprobe("ovs_execute_actions")
def ovsclone_exec_ret(b, ctx, opts: Options):
    with state.lookup(b, 0) as st, b.if_(st.level != 0):
        st.level = st.level - 1
        with b.if_(st.level == 0):
            st.deferred = 0


@kprobe("clone_execute")
def ovsclone_clone(b, ctx, opts: Options):
    """``clone_execute(dp, skb, key, recirc_id, actions, len, last, clone_flow_key)``."""
    actions = ctx.arg(4)
    clone_flow_key = ctx.arg(7) & 0xFF  # a bool in an 8-byte stack slot
    raised = b.var(0)
    with state.lookup(b, 0) as st, depths.lookup(b, 0) as d:
        with b.if_(clone_flow_key != 0):
            with b.if_(st.level <= opts.limits.threshold):  # clone_key() finds a key
                with b.if_(actions != 0):  # clone or sample: nested, one level deeper
                    st.level = st.level + 1
                    raised.set(1)
                    with b.if_(st.level > d.peak_level):
                        d.peak_level = st.level
            with b.else_():  # no key left: deferred to the FIFO, or dropped when it is full
                queued = st.deferred.rvalue() + 1
                st.deferred = queued
                with b.if_(queued > d.peak_deferred):
                    d.peak_deferred = queued
                with b.if_(queued > opts.limits.deferred - 1):  # action_fifo_put keeps one free
                    d.deferred_drops = d.deferred_drops + 1
                with b.else_():
                    d.deferred = d.deferred + 1
        st.clones = (st.clones << 1) | raised


@kretprobe("clone_execute")
def ovsclone_clone_ret(b, ctx, opts: Options):
    with state.lookup(b, 0) as st:
        raised = st.clones & 1
        st.clones = st.clones >> 1
        with b.if_((raised != 0) & (st.level != 0)):
            st.level = st.level - 1


DEPTH_PROGRAMS = [ovsclone_exec, ovsclone_exec_ret, ovsclone_clone, ovsclone_clone_ret]


class OvsCloneSummary(Tool):
    """OVS datapath actions by datapath, type and recirc_id; nesting per CPU."""

    tracing = "OVS datapath actions"
    interval = 1.0

    def unavailable(self) -> str | None:
        why = ovs.unavailable()
        if why is None:
            for pdef in (ovsclone_action, *DEPTH_PROGRAMS):
                why = unavailable(pdef)
                if why is not None:
                    return f"{why} (the action counts need the tracepoint of 5.16+, the depths kprobes)"
            if ovs.limits() is None:
                return f"no module BTF ({ovs.MODULE_BTF}) to read the datapath's limits from"
        return why

    def options(self, args: argparse.Namespace) -> Options:
        return Options(ovs.limits() if ovs.unavailable() is None else None)

    def programs(self, opts: Options) -> list[ProgramDef]:
        return [ovsclone_action, *DEPTH_PROGRAMS]

    def notes(self, coll: Any, opts: Options) -> list[str]:
        lim = opts.limits
        return [f"limits: recursion {lim.recursion}, deferral past level {lim.threshold}, "
                f"{lim.deferred - 1} deferred actions a CPU"]

    def prepare(self, coll: Any, opts: Options) -> None:
        self.opts = opts
        self.names = ovs.action_names() or {}
        self.counts, self.depths, self.totals = coll.map(counts), coll.map(depths), Totals()
        self.drops_seen: dict[tuple[int, str], int] = {}

    def tick(self, coll: Any, opts: Options) -> list[dict[str, Any]]:
        gained = self.totals.gained({(k.dp, k.recirc_id, k.action): n for k, n in self.counts.items()})
        actions = [{"dp": dp, "recirc_id": recirc, "action": self.names.get(a, str(a)), "count": n}
                   for (dp, recirc, a), n in sorted(gained.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[1]))]
        cpus, warnings = [], []
        lim = opts.limits
        for cpu, d in enumerate(self.depths[0]):
            row = {"cpu": cpu, "peak_level": d.peak_level, "peak_deferred": d.peak_deferred,
                   "deferred": d.deferred, "deferred_drops": d.deferred_drops,
                   "recursion_drops": d.recursion_drops}
            if d.peak_level or d.peak_deferred:
                cpus.append(row)
            warnings += self._warnings(cpu, d, lim)
        return [{"time": round(time.time(), 6), "actions": actions, "cpus": cpus, "warnings": warnings}]

    def _warnings(self, cpu: int, d: Depth, lim: ovs.Limits) -> list[str]:
        out = []
        for what, n in (("deferred_drops", d.deferred_drops), ("recursion_drops", d.recursion_drops)):
            new = n - self.drops_seen.get((cpu, what), 0)
            self.drops_seen[(cpu, what)] = n
            if new:
                limit = (f"deferred action limit ({lim.deferred - 1})" if what == "deferred_drops"
                         else f"recursion limit ({lim.recursion})")
                out.append(f"CPU {cpu}: {new} packets dropped at the {limit}")
        if not out and d.peak_level >= lim.recursion:
            out.append(f"CPU {cpu}: nesting reached level {d.peak_level}, the recursion limit is "
                       f"{lim.recursion}")
        return out

    def tick_text(self, rows: list[dict[str, Any]]) -> list[str]:
        lines = []
        for row in rows:
            lines += [interval_header(when=row["time"]),
                      f"{'DATAPATH':<16} {'RECIRC_ID':>10} {'ACTION':<16} {'COUNT':>10}"]
            lines += [f"{a['dp']:<16} {a['recirc_id']:#10x} {a['action']:<16} {a['count']:>10}"
                      for a in row["actions"]]
            if row["cpus"]:
                lines.append(f"{'CPU':>4} {'PEAK_LEVEL':>10} {'PEAK_DEFER':>10} {'DEFERRED':>10} "
                             f"{'DEFER_DROP':>10} {'RECUR_DROP':>10}")
                lines += [f"{c['cpu']:>4} {c['peak_level']:>10} {c['peak_deferred']:>10} "
                          f"{c['deferred']:>10} {c['deferred_drops']:>10} {c['recursion_drops']:>10}"
                          for c in row["cpus"]]
            lines += [f"WARNING: {w}" for w in row["warnings"]]
        return lines


tool = OvsCloneSummary()

__all__ = ["ActionKey", "tool"]
