"""Open vSwitch inside a lab guest: start the daemons, build a bridge with namespace ports.

Runs in the guest (the Debian userland has openvswitch-switch; the guest loads
the ``openvswitch`` module at boot).  Everything goes through OVS's own tools.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUN_DIR = Path("/var/run/openvswitch")
DB = Path("/etc/openvswitch/conf.db")
SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
DB_SOCKET = f"unix:{RUN_DIR}/db.sock"


def sh(*argv: str) -> str:
    """Run a command; raise with its stderr when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def start() -> None:
    """Create a fresh database and start ovsdb-server and ovs-vswitchd (detached)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    DB.parent.mkdir(parents=True, exist_ok=True)
    DB.unlink(missing_ok=True)
    sh("ovsdb-tool", "create", str(DB), str(SCHEMA))
    sh("ovsdb-server", str(DB), f"--remote=p{DB_SOCKET}", "--pidfile", "--detach", "--log-file")
    sh("ovs-vsctl", "--no-wait", "init")
    sh("ovs-vswitchd", DB_SOCKET, "--pidfile", "--detach", "--log-file")


@dataclass(frozen=True)
class NetnsPort:
    """A namespace whose veth peer is a port of an OVS bridge."""

    netns: str
    address: str  #: the namespace side, without prefix length

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True, timeout=60
        )


def add_bridge(bridge: str) -> None:
    sh("ovs-vsctl", "add-br", bridge)
    sh("ip", "link", "set", bridge, "up")


def add_netns_port(bridge: str, netns: str, cidr: str) -> NetnsPort:
    """Create *netns*, a veth pair with one end in it (address *cidr*) and the other on *bridge*."""
    outside, inside = f"{netns}-br", f"{netns}-in"
    sh("ip", "netns", "add", netns)
    sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
    sh("ip", "link", "set", inside, "netns", netns)
    sh("ip", "-n", netns, "addr", "add", cidr, "dev", inside)
    sh("ip", "-n", netns, "link", "set", inside, "up")
    sh("ip", "-n", netns, "link", "set", "lo", "up")
    sh("ip", "link", "set", outside, "up")
    sh("ovs-vsctl", "add-port", bridge, outside)
    return NetnsPort(netns, cidr.split("/")[0])


def purge_datapath_flows() -> None:
    """Drop cached datapath flows, so traffic seen so far cannot be credited to rules added next.

    (When a rule is added, existing datapath flows are revalidated against it and
    their not-yet-reported packets would count towards the new rule.)
    """
    sh("ovs-appctl", "revalidator/purge")


def flow_packets(bridge: str, match: str) -> int:
    """``n_packets`` of the single OpenFlow flow whose dump contains *match*, after a
    revalidation round has pushed the datapath's counters into the OpenFlow rules."""
    sh("ovs-appctl", "revalidator/wait")
    lines = [line for line in sh("ovs-ofctl", "dump-flows", bridge).splitlines() if match in line]
    if len(lines) != 1:
        raise RuntimeError(f"expected one flow matching {match!r} on {bridge}, found {len(lines)}")
    found = re.search(r"n_packets=(\d+)", lines[0])
    if found is None:
        raise RuntimeError(f"no n_packets in {lines[0]!r}")
    return int(found.group(1))


def diagnostics(bridge: str) -> str:
    """Bridge, datapath, flows and the vswitchd log tail, for failure messages."""
    parts = []
    for argv in (
        ["ovs-vsctl", "show"],
        ["ovs-appctl", "dpctl/show"],
        ["ovs-ofctl", "dump-flows", bridge],
        ["tail", "-n", "20", "/var/log/openvswitch/ovs-vswitchd.log"],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        parts.append(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}")
    return "\n".join(parts)


# -- a datapath of its own, driven by ovs-dpctl (no ovs-vswitchd: no revalidator, no upcall handler)
def dpctl(*argv: str) -> str:
    return sh("ovs-dpctl", *argv)


@dataclass(frozen=True)
class Stats:
    """``ovs-dpctl show``'s lookups line."""

    hit: int
    missed: int
    lost: int


class Datapath:
    """A kernel datapath made with ``ovs-dpctl add-dp``; its flows are exactly the ones added.

    Nothing listens for upcalls: a miss, or a ``userspace()`` action, is lost
    (``ovs-dpctl show`` counts it), which is how a missing handler behaves.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        dpctl("add-dp", name)

    def add_port(self, device: str, internal: bool = False) -> int:
        """Add *device* (created as an internal port when *internal*); its port number."""
        dpctl("add-if", self.name, f"{device},type=internal" if internal else device)
        if internal:
            quiet_link(device)
        return self.ports()[device]

    def ports(self) -> dict[str, int]:
        found = re.findall(r"port (\d+): (\S+)", dpctl("show", self.name))
        return {name: int(number) for number, name in found}

    def add_flow(self, key: str, actions: str) -> None:
        dpctl("add-flow", self.name, key, actions)

    def flows(self) -> list[tuple[str, int, str]]:
        """(match, packets, ufid) of every flow, as ``ovs-dpctl dump-flows --more`` prints it."""
        out = []
        for line in dpctl("dump-flows", "--more", self.name).splitlines():
            found = re.match(r"ufid:(\S+), (.*), packets:(\d+),", line)
            if found:
                out.append((found.group(2), int(found.group(3)), found.group(1)))
        return out

    def stats(self) -> Stats:
        found = re.search(r"lookups: hit:(\d+) missed:(\d+) lost:(\d+)", dpctl("show", self.name))
        if found is None:
            raise RuntimeError(f"no lookups line for {self.name}")
        return Stats(*(int(g) for g in found.groups()))

    def delete(self) -> None:
        subprocess.run(["ovs-dpctl", "del-dp", self.name], capture_output=True, timeout=60)


def quiet_link(device: str, netns: str | None = None) -> None:
    """Bring *device* up with IPv6 off, so it sends nothing of its own (no RS, no MLD)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    sh(*prefix, "sysctl", "-qw", f"net.ipv6.conf.{device}.disable_ipv6=1")
    sh(*prefix, "ip", "link", "set", device, "up")


def quiet_netns_port(netns: str, cidr: str) -> tuple[NetnsPort, str]:
    """A namespace with one veth (address *cidr*, no IPv6, echo requests ignored);
    the namespace side and the name of the outside end (to add to a datapath)."""
    outside, inside = f"{netns}-br", f"{netns}-in"
    sh("ip", "netns", "add", netns)
    sh("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
       "net.ipv6.conf.default.disable_ipv6=1", "net.ipv4.icmp_echo_ignore_all=1")
    sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
    sh("sysctl", "-qw", f"net.ipv6.conf.{outside}.disable_ipv6=1")
    sh("ip", "link", "set", inside, "netns", netns)
    sh("ip", "-n", netns, "addr", "add", cidr, "dev", inside)
    sh("ip", "-n", netns, "link", "set", inside, "up")
    sh("ip", "link", "set", outside, "up")
    return NetnsPort(netns, cidr.split("/")[0]), outside


def tx_packets(device: str) -> int:
    """Packets the kernel counted as sent by *device* (into its veth peer)."""
    return int(Path(f"/sys/class/net/{device}/statistics/tx_packets").read_text())
