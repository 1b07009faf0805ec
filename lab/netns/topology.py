"""Topologies: namespaces, veth pairs, bridges, taps, addresses, MTUs, routes, neighbours,
sysctls and nft rules, declared in ``lab/topologies/NAME.toml``.

Every namespace of topology ``T`` is created as ``pbl-T-LOCALNAME`` (:data:`PREFIX`), and
every interface is created inside one of them, so the host's own interfaces are never touched
and ``lab down`` finds leftovers by name alone.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import sysctl, tomlfile
from .declared import Table
from .errors import DeclarationError

#: the prefix of every namespace the lab creates
PREFIX = "pbl-"
TOPOLOGY_DIR = Path(__file__).resolve().parent.parent / "topologies"

_NAME = re.compile(r"[a-z][a-z0-9]{0,31}")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@dataclass(frozen=True)
class Interface:
    """An interface inside namespace ``netns`` (the topology's local name)."""

    netns: str
    name: str
    addresses: tuple[str, ...] = ()   # CIDR, v4 or v6; v6 ones are added with nodad
    mtu: int | None = None
    mac: str | None = None
    #: False sets IFF_NOARP: no ARP, and no IPv6 solicited-node groups, hence no MLD reports
    arp: bool = True


@dataclass(frozen=True)
class Veth:
    a: Interface
    b: Interface


@dataclass(frozen=True)
class Bridge:
    interface: Interface
    ports: tuple[str, ...]            # interfaces in the bridge's namespace


@dataclass(frozen=True)
class Route:
    netns: str
    dst: str                           # a CIDR or "default"
    via: str | None = None
    dev: str | None = None


@dataclass(frozen=True)
class Neighbour:
    """A permanent neighbour entry, so that no ARP or ND packet ever crosses the lab."""

    netns: str
    dev: str
    address: str
    lladdr: str


@dataclass(frozen=True)
class Namespace:
    local: str
    full: str                          # the name under /run/netns
    sysctls: dict[str, str] = field(default_factory=dict)   # written in this order
    nft: str = ""                      # an nft ruleset loaded into the namespace


@dataclass(frozen=True)
class Topology:
    name: str
    description: str
    namespaces: dict[str, Namespace]
    veths: tuple[Veth, ...] = ()
    bridges: tuple[Bridge, ...] = ()
    taps: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()

    @property
    def prefix(self) -> str:
        """The prefix of this topology's namespace names."""
        return f"{PREFIX}{self.name}-"

    def interfaces(self) -> list[Interface]:
        """Every interface the topology creates, in creation order."""
        out = [end for veth in self.veths for end in (veth.a, veth.b)]
        return out + list(self.taps) + [bridge.interface for bridge in self.bridges]

    def interface(self, netns: str, name: str) -> Interface:
        for iface in self.interfaces():
            if (iface.netns, iface.name) == (netns, name):
                return iface
        raise DeclarationError(f"topology {self.name}: no interface {name!r} in namespace {netns!r}")


def check_name(name: str) -> str:
    """``name`` if it can name a topology (lower-case letters and digits, short)."""
    if not _NAME.fullmatch(name) or len(PREFIX) + len(name) > 20:
        raise DeclarationError(f"bad topology name {name!r}: use a few lower-case letters and digits")
    return name


def available() -> list[str]:
    """The names of the topologies shipped in ``lab/topologies``."""
    return sorted(p.stem for p in TOPOLOGY_DIR.glob("*.toml"))


def load(name_or_path: str) -> Topology:
    """The topology shipped as ``name_or_path`` or read from that file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = TOPOLOGY_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(available()) or "none"
            raise DeclarationError(f"no topology {name_or_path!r} (known: {known})")
    return parse(tomlfile.read(path), str(path))


def parse(data: dict, where: str) -> Topology:
    """Build and check a topology from a parsed TOML document."""
    doc = Table(data, where)
    name = doc.get("name", str)
    try:
        check_name(name)
    except DeclarationError as err:
        raise DeclarationError(f"{where}: {err}") from None
    namespaces = {}
    ns_tables = doc.table("namespaces")
    for local in ns_tables.data:
        t = ns_tables.table(local)
        if not _NAME.fullmatch(local):
            raise DeclarationError(f"{t.where}: namespace names are up to 32 lower-case letters and digits")
        sysctls = _sysctls(t)
        namespaces[local] = Namespace(local, f"{PREFIX}{name}-{local}", sysctls, t.get("nft", str, ""))
        t.done()
    ns_tables.done()
    if not namespaces:
        raise DeclarationError(f"{where}: declare at least one namespace")

    def interface(t: Table, netns: str | None = None) -> Interface:
        iface = Interface(
            netns=netns if netns is not None else t.get("netns", str),
            name=t.get("name", str),
            addresses=tuple(t.strings("addresses")),
            mtu=t.get("mtu", int, None),
            mac=t.get("mac", str, None),
            arp=t.get("arp", bool, True),
        )
        _check_interface(iface, namespaces, t.where)
        return iface

    veths = []
    for t in doc.tables("veth"):
        veths.append(Veth(interface(t.table("a")), interface(t.table("b"))))
        t.done()
    taps = []
    for t in doc.tables("tap"):
        taps.append(interface(t))
        t.done()
    bridges = []
    for t in doc.tables("bridge"):
        bridge = interface(t)
        bridges.append(Bridge(bridge, tuple(t.strings("ports"))))
        t.done()
    routes = []
    for t in doc.tables("route"):
        routes.append(Route(t.get("netns", str), t.get("dst", str), t.get("via", str, None),
                            t.get("dev", str, None)))
        t.done()
    neighbours = []
    for t in doc.tables("neighbour"):
        neighbours.append(Neighbour(t.get("netns", str), t.get("dev", str), t.get("address", str),
                                    t.get("lladdr", str)))
        t.done()
    topology = Topology(name, doc.get("description", str, ""), namespaces, tuple(veths),
                        tuple(bridges), tuple(taps), tuple(routes), tuple(neighbours))
    doc.done()
    _check_references(topology, where)
    return topology


def _sysctls(t: Table) -> dict[str, str]:
    """A namespace's sysctls, names and values checked (:mod:`.sysctl`)."""
    out = {}
    for key, raw in t.get("sysctls", dict, {}).items():
        try:
            sysctl.components(key)
            out[key] = sysctl.value(raw)
        except DeclarationError as err:
            raise DeclarationError(f"{t.where}.sysctls: {err}") from None
    return out


def _check_interface(iface: Interface, namespaces: dict[str, Namespace], where: str) -> None:
    if iface.netns not in namespaces:
        raise DeclarationError(f"{where}: unknown namespace {iface.netns!r}")
    if not _IFNAME.fullmatch(iface.name):
        raise DeclarationError(f"{where}: bad interface name {iface.name!r} (1-15 characters)")
    if iface.mac is not None and not _MAC.fullmatch(iface.mac):
        raise DeclarationError(f"{where}: bad MAC address {iface.mac!r}")
    if iface.mtu is not None and not 68 <= iface.mtu <= 65535:
        raise DeclarationError(f"{where}: MTU {iface.mtu} out of range 68-65535")
    for cidr in iface.addresses:
        try:
            ipaddress.ip_interface(cidr)
        except ValueError:
            raise DeclarationError(f"{where}: bad address {cidr!r}") from None


def _check_references(topology: Topology, where: str) -> None:
    names = {(i.netns, i.name) for i in topology.interfaces()}
    if len(names) != len(topology.interfaces()):
        raise DeclarationError(f"{where}: an interface name is declared twice in one namespace")
    for bridge in topology.bridges:
        for port in bridge.ports:
            if (bridge.interface.netns, port) not in names:
                raise DeclarationError(f"{where}: bridge {bridge.interface.name}: no port {port!r}")
    for route in topology.routes:
        if route.netns not in topology.namespaces:
            raise DeclarationError(f"{where}: route in unknown namespace {route.netns!r}")
        if route.dev is not None and (route.netns, route.dev) not in names:
            raise DeclarationError(f"{where}: route via unknown device {route.dev!r}")
        for address in filter(None, (route.via, None if route.dst == "default" else route.dst)):
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise DeclarationError(f"{where}: bad route address {address!r}") from None
    for neigh in topology.neighbours:
        if (neigh.netns, neigh.dev) not in names:
            raise DeclarationError(f"{where}: neighbour on unknown device {neigh.dev!r} in {neigh.netns!r}")
        if not _MAC.fullmatch(neigh.lladdr):
            raise DeclarationError(f"{where}: bad neighbour MAC {neigh.lladdr!r}")
        try:
            ipaddress.ip_address(neigh.address)
        except ValueError:
            raise DeclarationError(f"{where}: bad neighbour address {neigh.address!r}") from None
