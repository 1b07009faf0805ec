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
