"""``pybpfasm defrag``: the fate of every IP fragment and every datagram, IPv4 and IPv6.

Events for each fragment (``fragment`` with offset, length and the more-fragments bit,
``duplicate``, ``overlap``, ``too_far``, ``timeout``, ``evicted``, ``dropped`` with the
kernel's reason by name) and each datagram rebuilt (``reassembled``, with the defrag
user: ``local`` delivery or ``conntrack``); ``--summary`` prints one line per datagram
instead (fragments, bytes, time from the first fragment to the outcome, the outcome and,
for a datagram that did not make it, the byte ranges its queue never held); ``-i``
prints each namespace's fragment memory against its ``ipfrag_high_thresh``.

Where the kernel has no function hooks, the events come from ``netif_receive_skb``,
``kfree_skb`` and BPF netfilter programs (:mod:`.defrag_programs`); one stderr line
says what that costs.
"""

from __future__ import annotations

import argparse
import time
from socket import AF_INET, AF_INET6, inet_ntop
from typing import Any

from pybpfasm.clock import WallClock
from pybpfasm.dsl import ProgramDef
from pybpfasm.errors import UsageError

from . import defrag_functions as kf
from . import defrag_programs as kp
from .common import frag
from .common import options as types
from .common.hooks import Hook, kprobes_available
from .common.packet import F_IPV4, PROTO_NAMES, proto_name
from .common.tool import Tool
from .defrag_datagrams import Datagram, Tracker

USERS = {kp.U_UNKNOWN: None, kp.U_LOCAL: "local", kp.U_CONNTRACK: "conntrack"}
#: functions of IP defragmentation that drop a fragment without saying why (their callers
#: inline them on some kernels): the fragment overlaps, or memory refused it
DEFRAG_FUNCTIONS = frozenset({
    "ip_defrag", "ip_frag_queue", "ip_frag_reasm", "ipv6_frag_rcv", "ip6_frag_queue",
    "ip6_frag_reasm", "nf_ct_frag6_gather", "nf_ct_frag6_queue", "nf_ct_frag6_reasm",
})
#: where a timed-out queue's fragments are freed (kernels whose frees give no reason)
EXPIRE_FUNCTIONS = frozenset({"ip_expire", "ip6_frag_expire", "nf_ct_frag6_expire",
                              "inet_frag_rbtree_purge"})
#: where the fragments of a whole datagram are freed with it (its frag_list): not defrag's drops
WITH_DATAGRAM = frozenset({"kfree_skb_list", "kfree_skb_list_reason", "skb_release_data"})
#: drop reasons (names after SKB_DROP_REASON_) that are defrag's own events
REASON_EVENTS = {"DUP_FRAG": "duplicate", "FRAG_TOO_FAR": "too_far", "FRAG_REASM_TIMEOUT": "timeout"}
PROTOCOL_NUMBERS = {name: number for number, name in PROTO_NAMES.items()}
#: the netfilter programs' priorities: just after conntrack's defrag, and (LOCAL_IN) raw's
AFTER_DEFRAG = "conntrack_defrag"
LOCAL_IN_PRIORITY = "raw"
#: what the function-level path cannot give (one stderr line)
FUNCTION_LIMITS = ("too_far needs the kernel's FRAG_TOO_FAR drop reason (a queue emptied for "
                   "ipfrag_max_dist is otherwise told as timed out); OVS's defrag shows as user "
                   "conntrack (it calls ip_defrag as conntrack does)")
#: what this kernel cannot give without function hooks (one stderr line)
LIMITS = ("no function hooks here: overlap means a fragment defrag drops without a reason "
          "while memory is under ipfrag_high_thresh (inet_frag_queue_insert's answer needs "
          "kprobes or fentry); IPv6 local reassembly is inferred from the fragments seen at "
          "NF_INET_LOCAL_IN (ipv6_frag_rcv runs after it); fragments and drops carry no defrag "
          "user; IPv6 fragment headers behind other extension headers are not seen")


def protocol(text: str) -> int:
    """argparse type: a protocol name (udp, tcp, icmp, icmp6...) or number."""
    if text.lower() in PROTOCOL_NUMBERS:
        return PROTOCOL_NUMBERS[text.lower()]
    return types.integer(0, 255, "protocol")(text)


class Defrag(Tool):
    """Every fragment's and every datagram's fate."""

    tracing = "IP fragments and reassembly"
    events = kp.events
    at_exit = True  # -i: memory every interval; summaries of datagrams that ended

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--src", type=types.ip_address, help="only fragments from this address")
        parser.add_argument("--dst", type=types.ip_address, help="only fragments to this address")
        parser.add_argument("--id", type=types.integer(0, 2**32 - 1, "IP ID"), dest="ident",
                            metavar="ID", help="only this IP ID (IPv6: identification)")
        parser.add_argument("--proto", type=protocol, metavar="PROTO",
                            help="only this protocol (udp, tcp, icmp, icmp6 or a number)")
        parser.add_argument("--netns", type=types.netns_inode, metavar="INODE",
                            help="only this network namespace")
        parser.add_argument("--hook", choices=("auto", "kprobe", "netfilter"), default="auto",
                            help="tracepoints and netfilter programs (auto: where the kernel has "
                                 "netfilter links, 6.4+), or kprobes on the reassembly functions")
        parser.add_argument("--summary", action="store_true",
                            help="one line per datagram (fragments, bytes, duration, outcome, "
                                 "holes) instead of one per event")

    def unavailable(self) -> str | None:
        if _functions_usable() or _netfilter_usable():
            return None
        return ("no kprobes on the reassembly functions and no BPF netfilter links (6.4+) "
                "to see reassembled datagrams")

    def options(self, args: argparse.Namespace) -> kp.Options:
        if args.netns is not None and args.netns not in frag.namespaces():
            raise UsageError(f"--netns: no network namespace with inode {args.netns}")
        # auto: netfilter programs where the kernel has them (the path proven in the lab),
        # else the reassembly functions
        self.functions = args.hook == "kprobe" or (args.hook == "auto" and not _netfilter_usable())
        if args.hook == "kprobe" and not _functions_usable():
            raise UsageError("--hook kprobe: " + ("no kprobes in this kernel" if not kprobes_available()
                             else f"no function {', '.join(kf.missing())} to probe"))
        if args.hook == "netfilter" and not _netfilter_usable():
            raise UsageError("--hook netfilter: no BPF netfilter links in this kernel (6.4+)")
        if args.buffer == "perf" and not self.functions:
            raise UsageError("--buffer perf: netfilter programs (reassembled datagrams) can "
                             "only write to a ring buffer")
        return kp.Options(src=args.src, dst=args.dst, proto=args.proto, ident=args.ident,
                          netns=args.netns)

    def programs(self, opts: kp.Options) -> list[ProgramDef]:
        from pybpfasm.link.netfilter import priorities

        if self.functions:
            self.netfilter = []
            return [Hook(kp.drop).choose(), *kf.programs()]
        after = {f: priorities(f)[AFTER_DEFRAG] + 1 for f in ("ipv4", "ipv6")}
        self.netfilter = kp.netfilter_programs(after, priorities("ipv4")[LOCAL_IN_PRIORITY])
        return [Hook(kp.receive).choose(), Hook(kp.drop).choose(), *self.netfilter]

    def notes(self, coll: Any, opts: kp.Options) -> list[str]:
        if self.functions:
            return [f"hooks: kprobes on {', '.join(e[0] for e in kf.ENTRIES)}, {kf.INSERT}; "
                    "skb:kfree_skb", FUNCTION_LIMITS]
        return [f"reassembled datagrams are seen in the {len(self.netns_paths)} network "
                "namespaces that existed at start", LIMITS]

    def prepare(self, coll: Any, opts: kp.Options) -> None:
        from pybpfasm.kernel import Kallsyms

        own = frag.own_namespace()
        everywhere = frag.namespaces()
        wanted = [opts.netns] if opts.netns is not None else list(everywhere)
        self.netns_paths = {}
        for inode in wanted:
            try:
                if inode != own:  # the frame attached them here already
                    for pdef in self.netfilter:
                        coll.attach(pdef, netns=everywhere[inode])
            except UsageError:  # the namespace is gone since it was listed
                if inode == opts.netns:
                    raise
                continue
            self.netns_paths[inode] = everywhere[inode]
        self.kallsyms = Kallsyms.load()
        self.wall = WallClock()
        self.tracker = Tracker()
        self.has_reasons = bool(kp.Reason.names())  # restored with cached programs: no BTF
        self.opts = opts
        #: (key, start, end) -> duplicate/overlap, from inet_frag_queue_insert, for the drop after it
        self.verdicts: dict[tuple, str] = {}

    # -- events ---------------------------------------------------------------------------
    def row(self, ev: kp.FragEvent) -> dict[str, Any] | None:
        key = _key(ev)
        if ev.kind == kp.K_FRAGMENT:
            dgram = self.tracker.fragment(key, ev.ts, ev.offset, ev.offset + ev.length, bool(ev.more))
            if ev.user:
                dgram.user = USERS[ev.user]
            return self._event(ev, "fragment", key, user=USERS[ev.user])
        if ev.kind == kp.K_DROP:
            return self._drop(ev, key)
        if ev.kind == kp.K_REASSEMBLED:
            return self._reassembled(ev, key)
        if ev.kind in (kf.K_DUP, kf.K_OVERLAP):
            verdict = "duplicate" if ev.kind == kf.K_DUP else "overlap"
            self.verdicts[(key, ev.offset, ev.offset + ev.length)] = verdict
            return None
        return self._local6(ev, key)

    def _drop(self, ev: kp.FragEvent, key: tuple) -> dict[str, Any] | None:
        reason = ev.reason if self.has_reasons else None  # decoded by name from BTF
        where = self.kallsyms.symbolize(ev.location).split("+")[0] if ev.location else ""
        if where in WITH_DATAGRAM:
            return None  # a reassembled datagram's part, freed with it (its drop is not ours)
        start, end = ev.offset, ev.offset + ev.length
        dgram = self.tracker.holding(key, start, end)
        name = self.verdicts.pop((key, start, end), None) or REASON_EVENTS.get(reason or "")
        unexplained = name is None and reason in (None, "NOT_SPECIFIED")
        if unexplained and where in DEFRAG_FUNCTIONS:
            # insert's verdicts are known with kprobes: what is left is another invalid fragment
            name = "evicted" if ev.flags & kp.F_OVER else "dropped" if self.functions else "overlap"
        elif unexplained and where in EXPIRE_FUNCTIONS:
            name = "timeout"
        if dgram is not None and dgram.key[0]:
            key = dgram.key  # a queued fragment's namespace, from its arrival
        if name == "timeout" and dgram is not None and dgram.outcome not in (None, "timeout"):
            name = None  # a queue killed before (overlap...) frees the rest with this reason
        if dgram is not None:
            self._apply(dgram, name, start, end, ev.ts)
        return self._event(ev, name or "dropped", key, reason=reason)

    def _apply(self, dgram: Datagram, name: str | None, start: int, end: int, ts: int) -> None:
        """What a drop does to the datagram that held the fragment."""
        piece = dgram.find(start, end)
        if name in ("duplicate", "overlap", "evicted") and piece is not None:
            piece.refused = True
        if dgram.outcome is not None:
            return
        if name == "overlap":
            self.tracker.close(dgram, "overlap", ts)
        elif name == "too_far":
            self.tracker.split_last(dgram, "too_far", ts)
        elif name == "timeout":
            self.tracker.close(dgram, "timeout", ts)
        elif name is None:
            self.tracker.close(dgram, "dropped", ts)

    def _reassembled(self, ev: kp.FragEvent, key: tuple) -> dict[str, Any] | None:
        user = USERS[ev.user]
        dgram = self.tracker.open.get(key)
        if ev.flags & kp.F_NO_ID:  # the ID went with the fragment header
            dgram = self.tracker.complete_without_id(*key[:4], key[5])
            if dgram is not None:
                key = dgram.key
            elif self.opts.ident is not None:
                return None
        if dgram is None:  # its fragments came before the tool started
            dgram = Datagram(key, ev.ts, whole=ev.length)
        dgram.user = user
        self.tracker.close(dgram, "reassembled", ev.ts)
        return self._event(ev, "reassembled", key, user=user, length=dgram.total)

    def _local6(self, ev: kp.FragEvent, key: tuple) -> dict[str, Any] | None:
        """An IPv6 fragment bound for ``ipv6_frag_rcv``: its datagram is reassembled now if
        the kernel will take this fragment and it completes the queue."""
        dgram = self.tracker.open.get(key)
        if dgram is None:
            return None
        dgram.user = "local"
        start, end = ev.offset, ev.offset + ev.length
        if ev.flags & kp.F_OVER or dgram.refuses(start, end) or not dgram.complete():
            return None
        self.tracker.close(dgram, "reassembled", ev.ts)
        return self._event(ev, "reassembled", key, user="local", length=dgram.total)

    def _event(self, ev: kp.FragEvent, name: str, key: tuple, *, reason: str | None = None,
               user: str | None = None, length: int | None = None) -> dict[str, Any] | None:
        if self.args.summary:
            return None
        whole = name == "reassembled"
        return {
            "time": round(self.wall(ev.ts), 6),
            "event": name,
            "netns": key[0] or None,
            "src": key[2],
            "dst": key[3],
            "id": key[4] if key[4] is not None else None,
            "proto": proto_name(key[5]),
            "offset": None if whole else ev.offset,
            "len": length if whole else ev.length,
            "more": None if whole else bool(ev.more),
            "reason": reason,
            "user": user,
        }

    # -- summaries and memory ---------------------------------------------------------------
    def tick(self, coll: Any, opts: kp.Options) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        if self.args.interval is not None:
            now = round(time.time(), 6)
            for inode, path in sorted(self.netns_paths.items()):
                try:
                    found = frag.memory(path)
                except UsageError:  # the namespace is gone
                    del self.netns_paths[inode]
                    continue
                for mem in found:
                    rows.append({"time": now, "memory": True, "netns": inode, "family": mem.family,
                                 "queues": mem.queues, "bytes": mem.bytes, "high_thresh": mem.high_thresh})
        if self.args.summary:  # at exit (no -i): the open ones too, as incomplete
            done = (self.tracker.finish(_now_ns()) if self.args.interval is None
                    else self.tracker.take_closed())
            rows += [self._summary(d) for d in done if _wanted(d, opts)]
        return rows

    def _summary(self, d: Datagram) -> dict[str, Any]:
        return {
            "time": round(self.wall(d.end_ts), 6),
            "summary": True,
            "netns": d.key[0] or None,
            "src": d.key[2],
            "dst": d.key[3],
            "id": d.key[4],
            "proto": proto_name(d.key[5]),
            "fragments": len(d.pieces),
            "bytes": d.bytes(),
            "duration_us": round((d.end_ts - d.first_ts) / 1000) if d.pieces else 0,
            "outcome": d.outcome,
            "holes": d.holes() if d.outcome != "reassembled" else [],
        }

    def tick_text(self, rows: list[dict[str, Any]]) -> list[str]:
        return [self.text(r) for r in rows]

    def text(self, d: dict[str, Any]) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(d["time"])) + f".{int(d['time'] * 1e6) % 1000000:06d}"
        if d.get("memory"):
            return (f"{stamp} memory netns={d['netns']} {d['family']} queues={d['queues']} "
                    f"bytes={d['bytes']} high_thresh={d['high_thresh']}")
        flow = f"netns={d['netns'] or '-'} {d['src']} -> {d['dst']} id={d['id'] if d['id'] is not None else '-'} {d['proto']}"
        if d.get("summary"):
            holes = ",".join(f"{s}-{'?' if e is None else e}" for s, e in d["holes"]) or "-"
            return (f"{stamp} summary {flow} fragments={d['fragments']} bytes={d['bytes']} "
                    f"duration={d['duration_us']}us outcome={d['outcome']} holes={holes}")
        where = "" if d["offset"] is None else f" offset={d['offset']}"
        more = " MF" if d["more"] else ""
        extra = "".join(f" {k}={d[k]}" for k in ("reason", "user") if d[k] is not None)
        return f"{stamp} {d['event']:<11} {flow}{where} len={d['len']}{more}{extra}"


def _key(ev: kp.FragEvent) -> tuple:
    """(netns, family, src, dst, id, proto) of an event."""
    if ev.family == F_IPV4:
        src, dst = inet_ntop(AF_INET, ev.saddr[:4]), inet_ntop(AF_INET, ev.daddr[:4])
        ident = ev.ident
    else:
        src, dst = inet_ntop(AF_INET6, ev.saddr), inet_ntop(AF_INET6, ev.daddr)
        ident = None if ev.flags & kp.F_NO_ID else ev.ident
    return (ev.netns, ev.family, src, dst, ident, ev.proto)


def _functions_usable() -> bool:
    return kprobes_available() and not kf.missing()


def _netfilter_usable() -> bool:
    from pybpfasm import features
    from pybpfasm.sys import LinkType

    return features.link_type(LinkType.NETFILTER)


def _now_ns() -> int:
    """Now on the clock the programs stamp events with (CLOCK_MONOTONIC)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _wanted(d: Datagram, opts: kp.Options) -> bool:
    return opts.ident is None or d.key[4] == opts.ident


tool = Defrag()

__all__ = ["Defrag", "tool"]
