"""``pybpfasm netmon``: packet drops summarised in the kernel (dsahern's bpf-progs netmon).

``netmon drop -s KEY`` counts every drop in kernel hash maps under the sort key
(network namespace, MAC, IPv4/IPv6 address, flow, drop reason or interface) and by the
original's packet-type columns; only the tables cross to user space.  Every ``-r`` seconds
it prints the drops since the table before (Ctrl-C prints the last one):

    12:00:10: sort by network namespace, total drops: 9 (unix sockets 0):
                      LLDP         ARP  ...       other       total
      4026532465         0           0  ...           0           9

then drops by ``pkt_type`` and by location.  A map that fills up is counted and reported.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import time
from typing import Any

from pybpfasm.dsl import ProgramDef
from pybpfasm.errors import UsageError

from . import netmon_kernel as nk
from .common import options as types
from .common.metrics import Bounded, Family, counters
from .common.output import escape
from .common.packet import mac, proto_name
from .common.reasons import drop_reasons
from .common.tool import Tool

OVS_UPCALL = "queue_userspace_packet"


def netns_names() -> dict[int, str]:
    """Named network namespaces (``ip netns``): inode -> name."""
    names = {}
    for run in ("/run/netns", "/var/run/netns"):
        try:
            entries = os.listdir(run)
        except OSError:
            continue
        for name in entries:
            with contextlib.suppress(OSError):
                names.setdefault(os.stat(os.path.join(run, name)).st_ino, name)
    return names


def function_range(name: str) -> tuple[int, int] | None:
    """[start, end) of kernel function *name* from kallsyms (end: where the next symbol starts)."""
    from pybpfasm.kernel import Kallsyms

    syms = Kallsyms.load()
    if name not in syms:
        return None
    start = syms.address(name)
    inside = lambda off: syms.symbolize(start + off).split("+")[0] == name  # noqa: E731
    step = 1
    while inside(step) and step < 1 << 20:
        step *= 2
    low, high = step // 2, step  # inside(low), not inside(high)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if inside(mid) else (low, mid)
    return start, start + high


class DropKeys:
    """A DropKey as the sort shows it: the JSON key and its text."""

    def __init__(self, sort: str) -> None:
        self.sort = sort
        self.reasons = drop_reasons() or {}
        self.names = netns_names() if sort == "netns" else {}

    def address(self, raw: bytes, family: int) -> str:
        return socket.inet_ntop(socket.AF_INET, raw[:4]) if family == 4 else socket.inet_ntop(socket.AF_INET6, raw)

    def json(self, k: Any) -> Any:
        sort = self.sort
        if sort == "netns":
            return k.n or None
        if sort == "reason":
            return self.reasons.get(k.n, k.n) if self.reasons else None
        if sort == "ifname":
            return bytes(k.subject).rstrip(b"\0").decode(errors="backslashreplace") or None
        if sort in ("dmac", "smac"):
            return mac(bytes(k.subject)[:6])
        if sort in ("dip", "sip"):
            return self.address(bytes(k.subject), k.family)
        return {"proto": proto_name(k.proto), "src": self.address(bytes(k.subject), k.family),
                "sport": k.sport, "dst": self.address(bytes(k.peer), k.family), "dport": k.dport}

    def text(self, key: Any) -> str:
        if self.sort == "netns" and key is not None:
            return self.names.get(key, str(key))
        if isinstance(key, dict):
            ports = key["sport"] or key["dport"]
            src = f"{key['src']}:{key['sport']}" if ports else key["src"]
            dst = f"{key['dst']}:{key['dport']}" if ports else key["dst"]
            return f"{key['proto']} {src} -> {dst}"
        return "-" if key is None else str(key)


def _typed(event: str) -> bool:
    """Whether BTF has raw tracepoint *event*'s prototype (its arguments' layout)."""
    from pybpfasm.btf import BTF, BTFError, Kind

    try:
        return bool(BTF.kernel().ids(f"btf_trace_{event}", [Kind.TYPEDEF]))
    except BTFError:
        return False


def xdp_actions() -> dict[int, str]:
    """``enum xdp_action`` from BTF: value -> name (``XDP_ABORTED``...)."""
    from pybpfasm.btf import BTF, BTFError

    try:
        return {v: k for k, v in BTF.kernel().enum("xdp_action").items()}
    except BTFError:
        return {}


def raw(key: Any) -> tuple:
    """A DropKey as a hashable value."""
    return (bytes(key.subject), bytes(key.peer), key.sport, key.dport, key.n, key.family, key.proto)


class Gains:
    """What running totals (never reset in the kernel) gained since the last look."""

    def __init__(self) -> None:
        self.seen: dict[Any, tuple[int, ...]] = {}

    def __call__(self, now: dict[Any, tuple[int, ...]]) -> dict[Any, tuple[int, ...]]:
        seen, self.seen = self.seen, now
        out = {}
        for key, values in now.items():
            before = seen.get(key, (0,) * len(values))
            gained = tuple(a - b for a, b in zip(values, before))
            if any(gained):
                out[key] = gained
        return out


class NetmonDrop(Tool):
    """Drops by key, packet type and location, every ``-r`` seconds (and, as ``pcap``, the
    dropped packets to a pcapng file)."""

    tracing = "packet drops"
    interval = 10.0
    events = nk.captures

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("command", nargs="?", choices=("drop", "pcap"), default="drop",
                            help="drop: summarise packet drops (the default); pcap: the same, and "
                                 "write the dropped packets to -f FILE (pcapng)")
        parser.add_argument("-s", dest="sort", choices=list(nk.SORTS), default="netns",
                            help="sort and aggregate by this key (default netns)")
        parser.add_argument("-r", dest="interval", type=types.seconds, metavar="RATE", default=self.interval,
                            help="seconds between tables (default 10; the same as --interval)")
        parser.add_argument("-t", dest="threshold", type=types.integer(1, 2**63 - 1, "threshold"),
                            default=1, metavar="THRESHOLD", help="hide rows with fewer drops")
        parser.add_argument("-c", dest="limit", type=types.count, metavar="COUNT",
                            help="drop: exit after the table in which the drops reached COUNT; "
                                 "pcap: after COUNT packets written (the same as --count)")
        parser.add_argument("-f", dest="file", metavar="FILE", help="pcap: write the dropped packets here (pcapng)")
        parser.add_argument("-l", dest="snaplen", type=types.integer(1, nk.SNAP_MAX, "snaplen"), default=100,
                            metavar="SNAPLEN", help=f"pcap: bytes of each packet to keep (default 100, at most {nk.SNAP_MAX})")
        ovs = parser.add_mutually_exclusive_group()
        ovs.add_argument("-o", dest="only_ovs", action="store_true",
                         help=f"only OVS upcall drops ({OVS_UPCALL})")
        ovs.add_argument("-O", dest="skip_ovs", action="store_true", help="skip OVS upcall drops")
        parser.add_argument("-T", dest="skip_tcp", action="store_true",
                            help="skip TCP drops of packets to this host")
        parser.add_argument("-U", dest="skip_unix", action="store_true", help="skip unix socket drops")
        parser.add_argument("--netns", type=types.netns_inode, action="append", default=[], metavar="INODE",
                            help="only drops in this network namespace (repeatable)")
        parser.add_argument("--hook", choices=("auto", *nk.drop_hook.kinds), default="auto",
                            help="the kfree_skb raw tracepoint (auto: where the kernel has BTF) or the tracepoint")

    def configure(self, parser: argparse.ArgumentParser) -> None:
        super().configure(parser)
        # the original's -i is the device: it takes -i from the frame's interval (still --interval, and -r)
        device = parser.add_argument_group("device", conflict_handler="resolve")
        device.add_argument("-i", dest="dev", type=types.ifname, metavar="DEV", help="only drops on this device")

    def options(self, args: argparse.Namespace) -> nk.Options:
        if args.command == "pcap" and args.file is None:
            raise UsageError("pcap: give the capture file with -f FILE")
        if args.command == "drop" and args.file is not None:
            raise UsageError("-f FILE is for 'netmon pcap'")
        if getattr(args, "raw", False):
            raise UsageError("--raw: netmon prints tables; 'netmon pcap -f FILE' writes the packets")
        args.limit = args.limit or args.count
        args.count = None  # the tool counts (drops in a table, or packets written), not the frame
        ovs = None
        if args.only_ovs or args.skip_ovs:
            where = function_range(OVS_UPCALL)
            if where is None:
                raise UsageError(f"-{'o' if args.only_ovs else 'O'}: no kernel symbol {OVS_UPCALL} "
                                 "(is the openvswitch module loaded?)")
            ovs = (*where, args.only_ovs)
        return nk.Options(sort=args.sort, skip_tcp=args.skip_tcp, skip_unix=args.skip_unix, ovs=ovs,
                          netns=tuple(args.netns), ifname=args.dev, hook=args.hook,
                          snaplen=args.snaplen if args.command == "pcap" else 0)

    def programs(self, opts: nk.Options) -> list[ProgramDef]:
        from .common.hooks import unavailable

        self.xdp = [p for p in nk.XDP_PROGRAMS if unavailable(p) is None and _typed(p.target[0])]
        return [nk.drop_hook.choose(opts.hook), *self.xdp]

    def notes(self, coll: Any, opts: nk.Options) -> list[str]:
        hooks = ", ".join(f"{p.kind} {':'.join(p.target)}" for p in coll.programs)
        lines = [f"hooks: {hooks}"]
        if not drop_reasons():
            lines.append("this kernel reports no drop reasons (they arrived in 5.17)")
        missing = [e for e in nk.XDP_EVENTS if e not in {p.target[0] for p in self.xdp}]
        if missing:
            lines.append(f"XDP: no raw tracepoint {', '.join(missing)} in this kernel (6.18 reports map "
                         "redirect errors as xdp_redirect_err)")
        lines.append("XDP: XDP_DROP verdicts are not counted (that needs fexit on each XDP program: "
                     "not implemented)")
        return lines

    def prepare(self, coll: Any, opts: nk.Options) -> None:
        from pybpfasm.kernel import Kallsyms

        self.opts = opts
        self.kallsyms = Kallsyms.load()
        self.keys, self.places, self.totals = coll.map(nk.keys), coll.map(nk.places), coll.map(nk.totals)
        self.render = DropKeys(opts.sort)
        self.reasons = drop_reasons() or {}
        self.key_gains, self.place_gains, self.total_gains = Gains(), Gains(), Gains()
        self.reached = 0
        from pybpfasm.clock import WallClock

        self.wall = WallClock()
        self.xdp_map, self.xdp_gains, self.actions = coll.map(nk.xdp_drops), Gains(), xdp_actions()
        self.key_labels: dict[tuple, str] = {}
        self.pcap = None
        if opts.snaplen:
            from .common.pcapng import PcapngWriter, open_capture

            self.pcap = PcapngWriter(open_capture(self.args.file), snaplen=opts.snaplen)
        self.bounds = {name: Bounded() for name in ("drops", "locations", "keys", "xdp")}

    # -- one table --------------------------------------------------------------------------
    def _totals(self) -> tuple[int, ...]:
        per_cpu = self.totals[0]
        fields = [(t.drops, t.unix, t.full_keys, t.full_places, t.full_xdp, *t.pkt_types) for t in per_cpu]
        return tuple(sum(col) for col in zip(*fields))

    def _place(self, p: Any) -> tuple[str, str | None, str | None, int | None]:
        where = self.kallsyms.symbolize(p.location).split("+")[0] if p.location else "?"
        reason = p.reason if self.reasons else None  # decoded by name from BTF
        return where, reason, p.ifname or None, p.netns or None

    def tick(self, coll: Any, opts: nk.Options) -> list[dict[str, Any]]:
        if self.pcap is not None:
            self.pcap.flush()  # every packet read so far is in the file when its table prints
        gained = self.total_gains({0: self._totals()}).get(0, (0,) * (5 + len(nk.PKT_TYPES)))
        drops, unix, full_keys, full_places, full_xdp = gained[:5]
        counted = {raw(k): (k, (*v.cols, v.total)) for k, v in self.keys.items()}
        keyed = self.key_gains({r: v for r, (_, v) in counted.items()})
        now: dict[tuple, tuple[int]] = {}
        for p, n in self.places.items():  # places of one function at several offsets add up
            where = self._place(p)
            now[where] = (now.get(where, (0,))[0] + n,)
        placed = self.place_gains(now)
        rows = [{"key": self.render.json(counted[k][0]), "total": v[-1],
                 **{col: n for (col, _), n in zip(nk.COLUMNS, v)}} for k, v in keyed.items()]
        rows.sort(key=lambda r: (-r["total"], str(r["key"])))
        for k in keyed:
            self.key_labels.setdefault(k, self.render.text(self.render.json(counted[k][0])))
        locations: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for (where, reason, _, _), (n,) in placed.items():
            locations[where] = locations.get(where, 0) + n
            if reason is not None:
                reasons[str(reason)] = reasons.get(str(reason), 0) + n
        self.reached += drops
        return [{
            "time": round(time.time(), 6), "sort": opts.sort, "total": drops, "unix": unix,
            "rows": [r for r in rows if r["total"] >= self.args.threshold],
            "pkt_types": dict(zip(nk.PKT_TYPES, gained[5:])),
            "locations": dict(sorted(locations.items(), key=lambda kv: (-kv[1], kv[0]))),
            "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "xdp": self._xdp_rows(),
            "full": {"keys": full_keys, "places": full_places, "xdp": full_xdp},
        }]

    def _xdp_rows(self) -> list[dict[str, Any]]:
        """This table's XDP-layer drops: one row a tracepoint, device, action or error and target."""
        now = {(k.event, k.ifname, k.netns, k.act, k.err, k.target): (n,) for k, n in self.xdp_map.items()}
        rows = []
        for (event, ifname, netns, act, err, target), (n,) in self.xdp_gains(now).items():
            redirect = event != 0
            rows.append({"event": nk.XDP_EVENTS[event], "ifname": ifname or None, "netns": netns or None,
                         "action": self.actions.get(act, act),
                         "err": (errno.errorcode.get(-err, err) if err else None) if redirect else None,
                         "target": target if redirect else None, "count": n})
        rows.sort(key=lambda r: (-r["count"], r["event"], str(r["ifname"])))
        return rows

    def finished(self) -> bool:
        return self.pcap is None and self.args.limit is not None and self.reached >= self.args.limit

    def row(self, ev: Any) -> None:
        """``netmon pcap``: a dropped packet to the file, its reason, location and interface in
        its comment; after ``-c`` packets the tool stops as Ctrl-C stops it (the last table printed)."""
        from .common.pcapng import LINKTYPE_ETHERNET, LINKTYPE_RAW

        if self.pcap is None or (self.args.limit is not None and self.pcap.packets >= self.args.limit):
            return None
        where = self.kallsyms.symbolize(ev.location) if ev.location else "?"
        reason = ev.reason if self.reasons else "-"
        caplen = min(ev.wire_len, self.opts.snaplen)
        comment = f"reason {reason} at {where} on {ev.ifname or '-'} netns {ev.netns}"
        self.pcap.packet(ev.ifname or "-", LINKTYPE_ETHERNET if ev.mac else LINKTYPE_RAW, bytes(ev.data[:caplen]),
                         length=ev.wire_len, ts_ns=int(self.wall(ev.ts) * 1e9), comment=comment)
        if self.args.limit is not None and self.pcap.packets >= self.args.limit:
            self.pcap.flush()
            os.kill(os.getpid(), signal.SIGINT)
        return None

    def metrics(self) -> list[Family]:
        """The totals since the start: by reason, interface and namespace, by location, by
        the sort's key (each at most the first 50 label sets, then ``other``), by pkt_type."""
        totals = self.total_gains.seen.get(0, (0,) * (5 + len(nk.PKT_TYPES)))
        drops = Family("pybpfasm_drops_total", "packets dropped", ("reason", "ifname", "netns"))
        where = Family("pybpfasm_drop_locations_total", "packets dropped, by the function that dropped them",
                       ("location",))
        by_reason: dict[tuple, int] = {}
        by_location: dict[tuple, int] = {}
        for (location, reason, ifname, netns), (n,) in self.place_gains.seen.items():
            key = (reason, ifname, netns)
            by_reason[key] = by_reason.get(key, 0) + n
            by_location[(location,)] = by_location.get((location,), 0) + n
        for key, n in self.bounds["drops"].fold(by_reason).items():
            drops.add(key, n)
        for key, n in self.bounds["locations"].fold(by_location).items():
            where.add(key, n)
        keyed = Family("pybpfasm_drops_by_key_total", "packets dropped, by the sort key (-s) and its value",
                       ("sort", "key"))
        rows = {(self.opts.sort, self.key_labels.get(k, "?")): v[-1] for k, v in self.key_gains.seen.items()}
        for key, n in self.bounds["keys"].fold(rows).items():
            keyed.add((self.opts.sort, key[1]) if key[0] == "other" else key, n)
        kinds = Family("pybpfasm_drops_by_pkt_type_total", "packets dropped, by skb pkt_type", ("pkt_type",))
        for name, n in zip(nk.PKT_TYPES, totals[5:]):
            kinds.add((name,), n)
        unix = Family("pybpfasm_unix_socket_drops_total", "unix socket drops (in no key row)")
        unix.add((), totals[1])
        lost = Family("pybpfasm_lost_events_total", "drops that found a map full (counted, not keyed)", ("map",))
        lost.add(("keys",), totals[2])
        lost.add(("places",), totals[3])
        lost.add(("xdp",), totals[4])
        xdp = counters("pybpfasm_xdp_drops_total", "XDP-layer drops, by tracepoint, device and action",
                       ("event", "ifname", "netns", "action"),
                       (((nk.XDP_EVENTS[e], i, ns, self.actions.get(a, a)), n)
                        for (e, i, ns, a, _, _), (n,) in self.xdp_gains.seen.items()), self.bounds["xdp"])
        return [drops, where, keyed, kinds, unix, lost, xdp]

    # -- text -------------------------------------------------------------------------------
    def tick_text(self, tables: list[dict[str, Any]]) -> list[str]:
        lines: list[str] = []
        for t in tables:
            lines += ["", f"{time.strftime('%H:%M:%S', time.localtime(t['time']))}: sort by "
                      f"{nk.SORTS[t['sort']]}, total drops: {t['total']} (unix sockets {t['unix']}):"]
            lines += self._flows(t["rows"]) if t["sort"].startswith("flow") else self._columns(t["rows"])
            lines += ["", "  drops by packet type: " + "".join(f"  {k}: {n}" for k, n in t["pkt_types"].items()), ""]
            lines += [f"{escape(where):>32}: {n:10}" for where, n in t["locations"].items()]
            for x in t["xdp"]:
                detail = f" {x['err']} to {x['target']}" if x["err"] is not None else ""
                lines.append(f"  {x['event']}: {escape(x['ifname'] or '-')} netns {x['netns']} "
                             f"{x['action']}{detail}: {x['count']}")
            full = t["full"]
            if any(full.values()):
                lines.append(f"  maps full: {full['keys']} drops without a key row (max {nk.MAX_KEYS}), "
                             f"{full['places']} without a location (max {nk.MAX_PLACES}), "
                             f"{full['xdp']} XDP drops uncounted")
        return lines

    def _columns(self, rows: list[dict[str, Any]]) -> list[str]:
        names = [escape(self.render.text(r["key"])) for r in rows]
        width = max([10, *map(len, names)])
        head = "  " + " " * width + "".join(f"  {h:>10}" for _, h in nk.COLUMNS) + f"  {'total':>10}"
        body = ["  " + f"{name:>{width}}" + "".join(f"  {r[c]:10}" for c, _ in nk.COLUMNS) + f"  {r['total']:10}"
                for name, r in zip(names, rows)]
        return [head, *body]

    def _flows(self, rows: list[dict[str, Any]]) -> list[str]:
        group = "dst" if self.opts.sort == "flow" else "src"
        out: list[str] = []
        by: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by.setdefault(r["key"][group], []).append(r)
        for members in by.values():
            out += [f"    hits {r['total']:4}:   {escape(self.render.text(r['key']))}" for r in members] + [""]
        return out


tool = NetmonDrop()

__all__ = ["NetmonDrop", "tool"]
