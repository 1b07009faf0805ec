"""Names a filter may use: protocols from Python's socket module, and the constants
libpcap's scanner defines (``tcpflags``, ``tcp-syn``, ``icmp-echo``...)."""

from __future__ import annotations

import socket

ETHERTYPE_IP, ETHERTYPE_IPV6, ETHERTYPE_ARP, ETHERTYPE_REVARP = 0x0800, 0x86DD, 0x0806, 0x8035
ETHERTYPE_VLANS = (0x8100, 0x88A8, 0x9100)
IPPROTO_FRAGMENT = socket.IPPROTO_FRAGMENT

#: ``ether proto \\NAME`` and the protocols alone that are link types
ETHER_PROTOCOLS = {"ip": ETHERTYPE_IP, "ip6": ETHERTYPE_IPV6, "arp": ETHERTYPE_ARP, "rarp": ETHERTYPE_REVARP}

#: IP protocols that a name alone stands for: name -> (number, families)
IP_PROTOCOLS: dict[str, tuple[int, tuple[str, ...]]] = {
    "tcp": (socket.IPPROTO_TCP, ("ip", "ip6")),
    "udp": (socket.IPPROTO_UDP, ("ip", "ip6")),
    "sctp": (socket.IPPROTO_SCTP, ("ip", "ip6")),
    "icmp": (socket.IPPROTO_ICMP, ("ip",)),
    "icmp6": (socket.IPPROTO_ICMPV6, ("ip6",)),
    "igmp": (socket.IPPROTO_IGMP, ("ip",)),
    "pim": (socket.IPPROTO_PIM, ("ip", "ip6")),
    "ah": (socket.IPPROTO_AH, ("ip", "ip6")),
    "esp": (socket.IPPROTO_ESP, ("ip", "ip6")),
}
#: protocols whose header can be indexed (``tcp[13]``)
INDEXABLE = ("ether", "link", "ip", "ip6", "arp", "rarp", *IP_PROTOCOLS)
#: protocols with ports
PORT_PROTOCOLS = ("tcp", "udp", "sctp")

#: named constants of libpcap's scanner, usable wherever a number is
CONSTANTS: dict[str, int] = {
    "tcpflags": 13, "icmptype": 0, "icmpcode": 1, "icmp6type": 0, "icmp6code": 1,
    **{f"tcp-{n}": 1 << i for i, n in enumerate(("fin", "syn", "rst", "push", "ack", "urg", "ece", "cwr"))},
    **{f"icmp-{n}": v for n, v in (
        ("echoreply", 0), ("unreach", 3), ("sourcequench", 4), ("redirect", 5), ("echo", 8),
        ("routeradvert", 9), ("routersolicit", 10), ("timxceed", 11), ("paramprob", 12),
        ("tstamp", 13), ("tstampreply", 14), ("ireq", 15), ("ireqreply", 16),
        ("maskreq", 17), ("maskreply", 18))},
    **{f"icmp6-{n}": v for n, v in (
        ("destinationunreach", 1), ("packettoobig", 2), ("timeexceeded", 3),
        ("parameterproblem", 4), ("echo", 128), ("echoreply", 129),
        ("multicastlistenerquery", 130), ("multicastlistenerreportv1", 131),
        ("multicastlistenerdone", 132), ("routersolicit", 133), ("routeradvert", 134),
        ("neighborsolicit", 135), ("neighboradvert", 136), ("redirect", 137))},
}


def ip_protocol(name: str) -> int | None:
    """An IP protocol by name (``/etc/protocols``, as libpcap looks it up), else None."""
    if name in IP_PROTOCOLS:
        return IP_PROTOCOLS[name][0]
    try:
        return socket.getprotobyname(name)
    except OSError:
        return None


def service_ports(name: str) -> tuple[int | None, int | None]:
    """The (tcp, udp) port numbers of service *name* (``/etc/services``)."""
    found = []
    for proto in ("tcp", "udp"):
        try:
            found.append(socket.getservbyname(name, proto))
        except OSError:
            found.append(None)
    return found[0], found[1]
