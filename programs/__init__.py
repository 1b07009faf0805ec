"""The tools, one module each (BPF side and CLI); shared pieces in :mod:`pybpfasm.tools.common`.

:data:`TOOLS` is where a tool registers: the ``pybpfasm`` command lists and
runs what is here, importing a tool's module only when it runs.  A tool
module defines ``tool``, an instance of :class:`~.common.tool.Tool`.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    """A registered tool: its module (under ``pybpfasm.tools``), one-line help, other names."""

    module: str
    help: str
    aliases: tuple[str, ...] = ()
    #: "tracer" (runs until stopped: :mod:`.common.tool`) or "command" (subcommands that act
    #: and exit, their state pinned: :mod:`.common.command`)
    kind: str = "tracer"


TOOLS: dict[str, Entry] = {
    "dropmon": Entry("dropmon", "packet drop monitor: who, what, where and why, filtered in the kernel",
                     ("multi-protocol-drop-monitor",)),
    "netmon": Entry("netmon", "packet drops summarised in the kernel by namespace, MAC, IP, flow, reason "
                    "or interface", ("netmon.c",)),
    "soconnect": Entry("soconnect", "IP connects: address, latency and result", ("soconnect.bt",)),
    "sofamily": Entry("sofamily", "accepts and connects by process and family", ("sofamily.bt",)),
    "soprotocol": Entry("soprotocol", "accepts and connects by protocol", ("soprotocol.bt",)),
    "sockstat": Entry("sockstat", "socket calls by probe, every interval", ("sockstat.bt",)),
    "opensnoop": Entry("opensnoop", "files opened (open, openat, openat2): flags and result", ("opensnoop.bt",)),
    "execsnoop": Entry("execsnoop", "new processes: each exec's whole argv, path and result", ("execsnoop.bt",)),
    "defrag": Entry("defrag", "IP fragments and reassembly: every fragment's and datagram's fate",
                    ("trace_ip_defrag",)),
    "ovs-dropmon": Entry("ovs_dropmon", "packets dropped in the OVS kernel datapath: reason, location, flow",
                         ("ovs-kernel-module-drop-monitor",)),
    "ovs-clone-summary": Entry("ovs_clone_summary", "OVS datapath actions by datapath, type and recirc_id, "
                               "and nesting depth per CPU", ("ovs-clone-execute-summary",)),
    "ovslatency": Entry("ovslatency", "time spent in ovs_vport_receive, in buckets, per port", ()),
    "xdp-dummy": Entry("xdp_dummy", "XDP_PASS on devices (what a veth needs before redirects into it)",
                       ("xdp_dummy",), kind="command"),
    "xdp-l2fwd": Entry("xdp_l2fwd", "layer-2 forwarding in XDP by <MAC, VLAN>: attach, fdb, stats, detach",
                       ("xdp_l2fwd",), kind="command"),
    "skbtracer": Entry("skbtracer", "packets through the stack: each skb at each hook, with its headers",
                       ("skbtracer.py",)),
    "datapath": Entry("datapath", "each packet to or from a host, hop by hop: rx, forward, bridge, "
                      "netfilter, tx, drop; --latency per edge", ("packet_datapath_tracing",)),
    "pkt-tracer": Entry("pkt_tracer", "calls of kernel functions with a packet, entry and return; a call "
                        "tree per packet with -o", ("pkt_tracer", "pkt_tracer.py")),
}


def lookup(name: str) -> tuple[str, Entry] | None:
    """The tool called *name* (its own name or an alias): (name, entry), or None."""
    if name in TOOLS:
        return name, TOOLS[name]
    for tool, entry in TOOLS.items():
        if name in entry.aliases:
            return tool, entry
    return None


def unavailable(name: str) -> str | None:
    """Why this kernel cannot run tool *name* at all (None: it runs here); imports its module."""
    from importlib import import_module

    return import_module(f"{__name__}.{TOOLS[name].module}").tool.unavailable()
