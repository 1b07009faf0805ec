"""The syntax tree of a filter expression: frozen dataclasses, children in source order.

Every node keeps the column (from 1) it starts at, for errors found after
parsing.  Meaning is given by :mod:`.semantics`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Union

# -- arithmetic (libpcap's "arth": unsigned 32-bit) --------------------------------------


@dataclass(frozen=True)
class Num:
    value: int
    column: int


@dataclass(frozen=True)
class Length:
    """``len``: the length of the packet on the wire."""

    column: int


@dataclass(frozen=True)
class Index:
    """``proto[offset : size]``: *size* bytes, big-endian, at *offset* into *proto*'s header."""

    proto: str
    offset: Arith
    size: int
    column: int


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Arith
    right: Arith
    column: int


@dataclass(frozen=True)
class Negate:
    operand: Arith
    column: int


Arith = Union[Num, Length, Index, BinOp, Negate]

# -- predicates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    """``arith relop arth``; *op* is one of ``== != > >= < <=``."""

    op: str
    left: Arith
    right: Arith
    column: int


@dataclass(frozen=True)
class And:
    left: Node
    right: Node
    column: int


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node
    column: int


@dataclass(frozen=True)
class Not:
    operand: Node
    column: int


@dataclass(frozen=True)
class Qualifiers:
    """What a value means: ``[proto] [dir] [type]``, each ``None`` when not given."""

    proto: str | None = None
    dir: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class Host:
    """``[ip|ip6|arp|rarp] [dir] host ADDRESS``."""

    q: Qualifiers
    address: Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
    column: int


@dataclass(frozen=True)
class Net:
    """``net NETWORK`` (also ``host`` with a partial IPv4 address, as libpcap reads it)."""

    q: Qualifiers
    network: Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
    column: int


@dataclass(frozen=True)
class EtherHost:
    """``ether [dir] host MAC`` (and ``host MAC``)."""

    dir: str | None
    mac: bytes
    column: int


@dataclass(frozen=True)
class Port:
    """``[tcp|udp|sctp] [dir] port N`` or ``portrange LOW-HIGH``; *proto* None means all three."""

    q: Qualifiers
    low: int
    high: int
    column: int


@dataclass(frozen=True)
class Proto:
    """``[ether|ip|ip6] proto N``: *layer* None means ip or ip6."""

    layer: str | None
    number: int
    column: int


@dataclass(frozen=True)
class Protocol:
    """A protocol alone: ``ip``, ``ip6``, ``arp``, ``rarp``, ``tcp``, ``udp``, ``icmp``..."""

    name: str
    column: int


@dataclass(frozen=True)
class Vlan:
    """``vlan [ID]``: shifts the offsets of everything after it, as libpcap does."""

    vid: int | None
    column: int


@dataclass(frozen=True)
class Broadcast:
    layer: str  # ether or ip
    column: int


@dataclass(frozen=True)
class Multicast:
    layer: str  # ether, ip or ip6
    column: int


Node = Union[Compare, And, Or, Not, Host, Net, EtherHost, Port, Proto, Protocol, Vlan, Broadcast, Multicast]
