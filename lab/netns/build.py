"""Create a topology's namespaces and everything in them; remove them again.

All objects live inside namespaces named ``pbl-TOPOLOGY-*`` so removal is by name:
deleting a namespace deletes its interfaces, addresses, routes, neighbours and nft tables.
:func:`down` is idempotent and also finds what an interrupted run left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator, Sequence

from pybpfasm.link.netns import entered

from . import children, sysctl
from .errors import LabError
from .topology import PREFIX, Interface, Topology, check_name

NETNS_DIR = Path("/run/netns")


def _run(argv: Sequence[str], stdin: str | None = None) -> None:
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed (Debian: apt-get install iproute2 nftables)") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"'{' '.join(argv)}' failed: {detail[-1] if detail else done.returncode}")


def _ip(netns: str, *args: str) -> None:
    _run(["ip", "-n", netns, *args])


def namespaces_up(prefix: str = PREFIX) -> list[str]:
    """The lab namespaces that exist now whose names start with ``prefix``."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def inode(netns: str) -> int:
    """The inode number of a named namespace (what ``netns`` fields of drop events carry)."""
    return os.stat(NETNS_DIR / netns).st_ino


def is_up(topology: Topology) -> bool:
    return bool(namespaces_up(topology.prefix))


def up(topology: Topology) -> None:
    """Build ``topology``; on any failure remove what was made and raise :class:`LabError`."""
    if os.geteuid() != 0:
        raise LabError("the lab creates network namespaces: run it as root")
    if is_up(topology):
        raise LabError(f"topology {topology.name} is already up (run 'pybpfasm lab down {topology.name}')")
    try:
        _build(topology)
    except BaseException:
        down(topology.name)
        raise


def down(name: str) -> list[str]:
    """Stop the processes and remove every namespace of topology ``name`` (leftovers of
    killed runs included); returns what it removed: ``"pid N"`` for each process, then
    the namespaces' names."""
    stopped = children.stop_leftovers(check_name(name))
    removed = namespaces_up(f"{PREFIX}{name}-")
    for netns in removed:
        _run(["ip", "netns", "del", netns])
    return [f"pid {pid}" for pid in stopped] + removed


@contextlib.contextmanager
def built(topology: Topology) -> Iterator[Topology]:
    """``topology`` up for the block, removed on every way out (exceptions, SIGTERM via
    SystemExit, interpreter exit)."""
    up(topology)
    atexit.register(down, topology.name)
    try:
        yield topology
    finally:
        atexit.unregister(down)
        down(topology.name)


def _build(topology: Topology) -> None:
    full = {ns.local: ns.full for ns in topology.namespaces.values()}
    for ns in topology.namespaces.values():
        _run(["ip", "netns", "add", ns.full])
        _ip(ns.full, "link", "set", "lo", "up")
    # namespace-wide sysctls (e.g. net.ipv6.conf.default.*) first, so new interfaces inherit them
    deferred = {ns.local: _write_sysctls(ns.full, ns.sysctls, missing_ok=True)
                for ns in topology.namespaces.values()}
    for veth in topology.veths:
        a, b = veth.a, veth.b
        _ip(full[a.netns], "link", "add", a.name, *_link_options(a), "type", "veth",
            "peer", "name", b.name, *_link_options(b), "netns", full[b.netns])
    for tap in topology.taps:
        _ip(full[tap.netns], "tuntap", "add", "dev", tap.name, "mode", "tap")
        if tap.mac or tap.mtu or not tap.arp:
            _ip(full[tap.netns], "link", "set", tap.name, *_link_options(tap))
    for bridge in topology.bridges:
        iface = bridge.interface
        _ip(full[iface.netns], "link", "add", iface.name, *_link_options(iface), "type", "bridge")
        for port in bridge.ports:
            _ip(full[iface.netns], "link", "set", port, "master", iface.name)
    for ns in topology.namespaces.values():
        _write_sysctls(ns.full, deferred[ns.local], missing_ok=False)
    for iface in topology.interfaces():
        _add_addresses(full[iface.netns], iface)
        _ip(full[iface.netns], "link", "set", iface.name, "up")
    for route in topology.routes:
        args = [route.dst]
        args += ["via", route.via] if route.via else []
        args += ["dev", route.dev] if route.dev else []
        _ip(full[route.netns], "-6" if ":" in (route.via or route.dst) else "-4", "route", "add", *args)
    for neigh in topology.neighbours:
        _ip(full[neigh.netns], "neigh", "replace", neigh.address, "lladdr", neigh.lladdr,
            "dev", neigh.dev, "nud", "permanent")
    for ns in topology.namespaces.values():
        if ns.nft:
            with entered(ns.full):  # nft inherits this thread's namespace
                _run(["nft", "-f", "-"], stdin=ns.nft)


def _link_options(iface: Interface) -> list[str]:
    out = ["address", iface.mac] if iface.mac else []
    out += ["mtu", str(iface.mtu)] if iface.mtu else []
    return out + ([] if iface.arp else ["arp", "off"])


def _add_addresses(netns: str, iface: Interface) -> None:
    for cidr in iface.addresses:
        nodad = ["nodad"] if ":" in cidr else []  # no duplicate address detection traffic
        _ip(netns, "addr", "add", cidr, "dev", iface.name, *nodad)


def _write_sysctls(netns: str, sysctls: dict[str, str], missing_ok: bool) -> dict[str, str]:
    """Write ``sysctls`` inside ``netns``; returns those whose files do not exist yet."""
    missing = {}
    with entered(netns):
        for key, value in sysctls.items():
            try:
                sysctl.write(key, value)
            except FileNotFoundError:
                if not missing_ok:
                    raise LabError(f"{netns}: no sysctl {key}") from None
                missing[key] = value
            except OSError as err:
                raise LabError(f"{netns}: cannot set {key}={value}: {err.strerror}") from None
    return missing
