"""xdp-l2fwd: layer-2 forwarding in XDP by <destination MAC, VLAN>, the replacement of
bpf-progs' xdp_l2fwd (the program is :mod:`.xdp_l2fwd_prog`).

No daemon: ``attach`` loads the program once, attaches it to each device and pins the
program, its maps and one link per device under ``/sys/fs/bpf/pybpfasm/xdp-l2fwd/netns-INODE``;
the other subcommands open those pins; ``detach`` removes them (with the last device, every
pin).  Egress devices enter the devmap when an FDB entry names them (``fdb add --dev``),
from inside the namespace, where the kernel resolves their ifindex.  An entry for a
multicast or the broadcast MAC is a group: each ``fdb add`` of it adds a device, and a
frame to it goes to every device of the group but the one it came in on.

::

    pybpfasm xdp-l2fwd attach DEV... [--netns NS] [--mode native|skb]
    pybpfasm xdp-l2fwd fdb add --mac MAC [--vlan VID] --dev DEV [--pop-inner] [--push-vlan VID]
    pybpfasm xdp-l2fwd fdb del --mac MAC [--vlan VID]
    pybpfasm xdp-l2fwd fdb list [--json]
    pybpfasm xdp-l2fwd stats [--json]
    pybpfasm xdp-l2fwd detach [DEV...]
"""

from __future__ import annotations

import argparse
from typing import Any

from pybpfasm.dsl.maps import codec
from pybpfasm.errors import UsageError
from pybpfasm.kernel import KernelError
from pybpfasm.link.netns import entered
from pybpfasm.maps import Map
from pybpfasm.prog import Program

from . import xdp_l2fwd_prog as bpf
from .common import macaddr, options, xdpattach
from .common.command import CommandTool, Rows, Subcommand
from .common.packet import mac
from .common.pins import PinDir

NAME = "xdp-l2fwd"
PROG = "prog"
vlan_id = options.integer(1, 4094, "VLAN id")


def _open(pins: PinDir, name: str) -> Map:
    """The pinned map *name* of :data:`~.xdp_l2fwd_prog.MAPS`, its keys and values decoded."""
    decl = bpf.MAPS[name]
    return Map.open_pinned(pins.file(name), codec(decl.key), codec(decl.value))


def _attached(netns: str | None) -> PinDir:
    """The pins of the forwarder in *netns*; one line if it is not attached there."""
    pins = PinDir(NAME, netns)
    if PROG not in pins.names():
        raise UsageError(f"{NAME} is not attached in this network namespace (run '{NAME} attach' first)")
    return pins


def _stale(pins: PinDir) -> bool:
    """Pins that forward nothing: no link, or only links whose devices are gone (the
    namespace of a reused inode, or devices deleted)."""
    links = xdpattach.pinned_links(pins)
    return not links or all(xdpattach.link_ifindex(path) == 0 for path in links.values())


def _members(groups: Map, key: Any) -> list[int]:
    """The ifindexes in the group at *key* ([] when there is none)."""
    group_id = groups.lookup(key)
    if group_id is None:
        return []
    with Map.from_id(group_id, 4, 4) as group:
        return sorted(group.keys())


def _join_group(pins: PinDir, key: Any, index: int, netns: str | None) -> None:
    """Add device *index* to the group of FDB key *key*, made when it is the first."""
    from pybpfasm.features import xdp_broadcast

    if not xdp_broadcast():
        raise KernelError("this kernel cannot send a frame to a group of devices (BPF_F_BROADCAST "
                          "came in 5.13): multicast and broadcast MACs have no FDB entries here")
    with _open(pins, "groups") as groups:
        group_id = groups.lookup(key)
        group = bpf.groups.group_spec().create() if group_id is None else Map.from_id(group_id, 4, 4)
        with group:
            with entered(netns):
                group[index] = index
            if group_id is None:
                groups[key] = group.fileno()


class XdpL2fwd(CommandTool):
    def subcommands(self) -> list[Subcommand]:
        def attach_args(p: argparse.ArgumentParser) -> None:
            xdpattach.add_devices(p)
            xdpattach.add_mode(p)

        def key_args(p: argparse.ArgumentParser) -> None:
            p.add_argument("--mac", required=True, type=macaddr.parse, help="destination MAC")
            p.add_argument("--vlan", type=vlan_id, metavar="VID",
                           help="outer VLAN id (1-4094; default: untagged)")

        def add_args(p: argparse.ArgumentParser) -> None:
            key_args(p)
            p.add_argument("--dev", required=True, type=options.ifname, help="egress device")
            p.add_argument("--pop-inner", action="store_true",
                           help="pop the inner tag of QinQ frames too (default: the outer only)")
            p.add_argument("--push-vlan", type=vlan_id, metavar="VID",
                           help="push an 802.1Q tag with this VLAN id on egress")

        fdb = (
            Subcommand("add", "add or replace the entry <MAC, VLAN> -> DEV", self.fdb_add, add_args, _text),
            Subcommand("del", "delete the entry <MAC, VLAN>", self.fdb_del, key_args, _text),
            Subcommand("list", "the entries and what each forwarded", self.fdb_list, None, _fdb_text,
                       f"{'MAC':<17} {'VLAN':>4} {'DEV':<15} {'IFINDEX':>7} {'PACKETS':>10} {'BYTES':>12}"),
        )
        return [
            Subcommand("attach", "load the forwarder (once) and attach it to each DEV", self.attach,
                       attach_args, _text),
            Subcommand("fdb", "the forwarding database", children=fdb),
            Subcommand("stats", "packets and bytes by verdict", self.stats, None, _stats_text,
                       f"{'VERDICT':<16} {'PACKETS':>10} {'BYTES':>12}"),
            Subcommand("detach", "detach from each DEV (default: all); the last removes every pin",
                       self.detach, lambda p: xdpattach.add_devices(p, required=False), _text),
        ]

    # -- attach / detach -------------------------------------------------------------------
    def attach(self, args: argparse.Namespace) -> Rows:
        for dev in args.devices:
            xdpattach.ifindex_of(dev, args.netns)  # every name checked before anything is made
        pins = PinDir(NAME, args.netns)
        if pins.exists() and _stale(pins):
            pins.remove()
        if pins.exists():
            with Program.open_pinned(pins.file(PROG)) as prog:
                return xdpattach.attach(prog, args.devices, args.netns, args.mode, pins.path)
        from pybpfasm.dsl import Collection
        from pybpfasm.dsl.cache import ProgramCache
        from pybpfasm.features import xdp_broadcast

        with Collection(cache=ProgramCache(salt=(__name__,))) as coll, pins.staging() as tmp:
            prog = coll.load(bpf.l2fwd, xdp_broadcast())
            for name, decl in bpf.MAPS.items():
                coll.map(decl).pin(f"{tmp}/{name}")
            prog.pin(f"{tmp}/{PROG}")
            return xdpattach.attach(prog, args.devices, args.netns, args.mode, tmp)

    def detach(self, args: argparse.Namespace) -> Rows:
        pins = _attached(args.netns)
        rows = xdpattach.detach(pins, args.devices)
        if not args.devices or not xdpattach.pinned_links(pins):
            pins.remove()
        return rows

    # -- fdb ---------------------------------------------------------------------------------
    def fdb_add(self, args: argparse.Namespace) -> Rows:
        pins = _attached(args.netns)
        index = xdpattach.ifindex_of(args.dev, args.netns)
        key = bpf.FdbKey(mac=args.mac, vlan=args.vlan or 0)
        flags = (bpf.F_POP_INNER if args.pop_inner else 0) | (bpf.F_PUSH if args.push_vlan else 0)
        entry = bpf.FdbEntry(port=index, flags=flags, push_tci=args.push_vlan or 0, packets=0, bytes=0)
        with _open(pins, "fdb") as fdb:
            if args.mac[0] & 1:  # the group bit: multicast or broadcast
                entry.port, entry.flags = 0, flags | bpf.F_GROUP
                _join_group(pins, key, index, args.netns)
                old = fdb.lookup(key)
                if old is not None and old.flags == entry.flags and old.push_tci == entry.push_tci:
                    entry = None  # a device more in the group: the entry and its counters stay
            else:
                with _open(pins, "ports") as ports, entered(args.netns):
                    ports[index] = index  # the kernel resolves the ifindex in the updater's namespace
            if entry is not None:
                fdb[key] = entry
        return [{"mac": mac(args.mac), "vlan": args.vlan, "dev": args.dev.decode(errors="backslashreplace"),
                 "ifindex": index, "added": True}]

    def fdb_del(self, args: argparse.Namespace) -> Rows:
        pins = _attached(args.netns)
        key = bpf.FdbKey(mac=args.mac, vlan=args.vlan or 0)
        with _open(pins, "ports") as ports, _open(pins, "fdb") as fdb, _open(pins, "groups") as groups:
            entry = fdb.lookup(key)
            if entry is None or not fdb.delete(key):
                vlan = f" VLAN {args.vlan}" if args.vlan else ""
                raise UsageError(f"no FDB entry for {mac(args.mac)}{vlan}")
            members = _members(groups, key)
            groups.delete(key)
            if not entry.flags & bpf.F_GROUP and all(e.port != entry.port for e in fdb.values()):
                ports.delete(entry.port)  # no entry sends there any more
        return [{"mac": mac(args.mac), "vlan": args.vlan, "dev": xdpattach.name_of(i, args.netns),
                 "ifindex": i, "added": False} for i in members or [entry.port]]

    def fdb_list(self, args: argparse.Namespace) -> Rows:
        pins = _attached(args.netns)
        with _open(pins, "fdb") as fdb:
            items = fdb.items()
        with _open(pins, "groups") as groups:
            devices = [_members(groups, k) if v.flags & bpf.F_GROUP else [v.port] for k, v in items]
        rows = [{"mac": mac(k.mac), "vlan": k.vlan or None, "dev": xdpattach.name_of(i, args.netns),
                 "ifindex": i, "packets": v.packets, "bytes": v.bytes}
                for (k, v), indexes in zip(items, devices) for i in indexes]
        return sorted(rows, key=lambda r: (r["mac"], r["vlan"] or 0, r["ifindex"]))

    def stats(self, args: argparse.Namespace) -> Rows:
        pins = _attached(args.netns)
        with _open(pins, "verdicts") as verdicts:
            per_cpu = [verdicts[i] for i in range(len(bpf.VERDICTS))]
        return [{name: {"packets": sum(c.packets for c in cpus), "bytes": sum(c.bytes for c in cpus)}
                 for name, cpus in zip(bpf.VERDICTS, per_cpu)}]


def _text(row: dict[str, Any]) -> str:
    if "attached" in row:
        return f"{NAME} {'attached to' if row['attached'] else 'detached from'} {row['dev']} (ifindex {row['ifindex']})"
    vlan = f" vlan {row['vlan']}" if row["vlan"] else ""
    return f"fdb {'added' if row['added'] else 'deleted'}: {row['mac']}{vlan} -> {row['dev']} (ifindex {row['ifindex']})"


def _fdb_text(row: dict[str, Any]) -> str:
    return (f"{row['mac']:<17} {row['vlan'] or '-':>4} {row['dev'] or '?':<15} {row['ifindex']:>7} "
            f"{row['packets']:>10} {row['bytes']:>12}")


def _stats_text(row: dict[str, Any]) -> str:
    return "\n".join(f"{name:<16} {c['packets']:>10} {c['bytes']:>12}" for name, c in row.items())


tool = XdpL2fwd()
