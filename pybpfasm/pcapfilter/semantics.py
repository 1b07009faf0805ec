"""The meaning of a filter's syntax tree, as libpcap's ``gencode.c`` gives it for Ethernet.

- ``vlan`` moves the link-type and network offsets of everything after it
  in the text by 4 bytes (not only inside its parentheses), as libpcap does.
- ``host``/``net`` without a protocol cover IPv4, ARP and RARP; an IPv6
  address covers IPv6.  ``port`` covers TCP, UDP and SCTP over IPv6 and IPv4.
- IPv4 ports and ``tcp[...]``-style fields are read only from first fragments
  (fragment offset 0), past the header length (IHL); IPv6 ports sit at the
  fixed offset 40 (no extension headers walked), while ``ip6 proto`` and the
  protocols alone also accept one fragment header before the protocol.
- For skbs (tc programs and skb hooks), the first ``vlan`` is also true for a tag the kernel
  took out of the packet, and then moves nothing (libpcap's live Linux captures do the same
  with the kernel's ancillary data); for raw frames (XDP) tags are only in the bytes.
- A field comparison holds only for packets of its protocol
  (``tcp[13] != 2`` is false for UDP), and ``!=``, ``<``, ``<=`` negate the
  comparison alone.
"""

from __future__ import annotations

import ipaddress

from . import ast, ir
from .errors import FilterError
from .names import (
    ETHERTYPE_ARP,
    ETHERTYPE_IP,
    ETHERTYPE_IPV6,
    ETHERTYPE_REVARP,
    ETHERTYPE_VLANS,
    IP_PROTOCOLS,
    IPPROTO_FRAGMENT,
    PORT_PROTOCOLS,
)

ETHERTYPES = {"ip": ETHERTYPE_IP, "ip6": ETHERTYPE_IPV6, "arp": ETHERTYPE_ARP, "rarp": ETHERTYPE_REVARP}
#: (source, destination) address offsets in each network header
ADDRESS_OFFSETS = {"ip": (12, 16), "ip6": (8, 24), "arp": (14, 24), "rarp": (14, 24)}
#: protocols whose fields are indexed from the end of the IPv4 header (libpcap's set)
TRANSPORT_INDEXED = ("tcp", "udp", "sctp", "icmp", "igmp", "pim")
IP_OFFSET_MASK = 0x1FFF
ETH_HLEN = 14


def meaning(tree: ast.Node, *, skb: bool = False) -> ir.Pred:
    """The predicate *tree* stands for, over raw frames or (*skb*) over skbs."""
    return _Lowering(skb).pred(tree)


def _eq(left: ir.Expr, right: int) -> ir.Cmp:
    return ir.Cmp("==", left, ir.Const(right))


def _load(offset: int, size: int) -> ir.Load:
    return ir.Load(ir.Const(offset), size)


class _Lowering:
    def __init__(self, skb: bool) -> None:
        self.skb = skb
        self.shift = 0  # bytes of VLAN tags before the network header
        self.runtime: ir.Expr | None = None  # the first vlan's shift, when the skb decides it
        self.vlans = 0

    def at(self, offset: int) -> ir.Expr:
        """*offset* into the frame, moved past the VLAN tags the text has named so far."""
        if self.runtime is None:
            return ir.Const(offset + self.shift)
        return ir.Bin("+", self.runtime, ir.Const(offset + self.shift))

    def load(self, offset: int, size: int) -> ir.Load:
        return ir.Load(self.at(offset), size)

    def ethertype(self, value: int) -> ir.Pred:
        return _eq(self.load(12, 2), value)

    # -- boolean structure ------------------------------------------------------------------------
    def pred(self, node: ast.Node) -> ir.Pred:
        method = getattr(self, f"_{type(node).__name__.lower()}")
        return method(node)

    def _and(self, node: ast.And) -> ir.Pred:
        return ir.all_of(self.pred(node.left), self.pred(node.right))

    def _or(self, node: ast.Or) -> ir.Pred:
        return ir.any_of(self.pred(node.left), self.pred(node.right))

    def _not(self, node: ast.Not) -> ir.Pred:
        return ir.Not(self.pred(node.operand))

    # -- protocols ----------------------------------------------------------------------------------
    def ip_proto(self, number: int) -> ir.Pred:
        return ir.all_of(self.ethertype(ETHERTYPE_IP), _eq(self.load(ETH_HLEN + 9, 1), number))

    def ip6_proto(self, number: int) -> ir.Pred:
        nexthdr = self.load(ETH_HLEN + 6, 1)
        after_fragment = ir.all_of(_eq(nexthdr, IPPROTO_FRAGMENT), _eq(self.load(ETH_HLEN + 40, 1), number))
        return ir.all_of(self.ethertype(ETHERTYPE_IPV6), ir.any_of(_eq(nexthdr, number), after_fragment))

    def _protocol(self, node: ast.Protocol) -> ir.Pred:
        if node.name in ETHERTYPES:
            return self.ethertype(ETHERTYPES[node.name])
        number, families = IP_PROTOCOLS[node.name]
        parts = [self.ip_proto(number) if f == "ip" else self.ip6_proto(number) for f in families]
        return ir.any_of(*parts)

    def _proto(self, node: ast.Proto) -> ir.Pred:
        if node.layer == "ether":
            return self.ethertype(node.number)
        if node.layer == "ip":
            return self.ip_proto(node.number)
        if node.layer == "ip6":
            return self.ip6_proto(node.number)
        return ir.any_of(self.ip_proto(node.number), self.ip6_proto(node.number))

    def _vlan(self, node: ast.Vlan) -> ir.Pred:
        tagged = ir.any_of(*(self.ethertype(t) for t in ETHERTYPE_VLANS))
        if node.vid is not None:
            tagged = ir.all_of(tagged, _eq(ir.Bin("&", self.load(ETH_HLEN, 2), ir.Const(0x0FFF)), node.vid))
        self.vlans += 1
        if self.skb and self.vlans == 1:  # the kernel may hold the tag beside the bytes
            present = _eq(ir.Ancillary("vlan_present"), 1)
            outside = present
            if node.vid is not None:
                outside = ir.all_of(present, _eq(ir.Bin("&", ir.Ancillary("vlan_tci"), ir.Const(0x0FFF)), node.vid))
            self.runtime = ir.Ancillary("vlan_shift")
            return ir.any_of(outside, ir.all_of(ir.Not(present), tagged))
        self.shift += 4
        return tagged

    # -- addresses ----------------------------------------------------------------------------------
    def _host(self, node: ast.Host) -> ir.Pred:
        return self.addresses(node.q, ipaddress.ip_network(node.address), node.column)

    def _net(self, node: ast.Net) -> ir.Pred:
        return self.addresses(node.q, node.network, node.column)

    def addresses(self, q: ast.Qualifiers, network, column: int) -> ir.Pred:
        if network.version == 6:
            if q.proto not in (None, "ip6"):
                raise FilterError(column, f"an IPv6 address needs 'ip6', not '{q.proto}'")
            families = ["ip6"]
        else:
            if q.proto == "ip6":
                raise FilterError(column, "an IPv4 address needs 'ip', 'arp' or 'rarp', not 'ip6'")
            families = [q.proto] if q.proto else ["ip", "arp", "rarp"]
        parts = []
        for family in families:
            src, dst = (ETH_HLEN + off for off in ADDRESS_OFFSETS[family])
            match = _direction(q.dir, lambda at: _address_match(self, at, network), src, dst)
            parts.append(ir.all_of(self.ethertype(ETHERTYPES[family]), match))
        return ir.any_of(*parts)

    def _etherhost(self, node: ast.EtherHost) -> ir.Pred:
        return _direction(node.dir, lambda at: _mac_match(at, node.mac), 6, 0)

    def _broadcast(self, node: ast.Broadcast) -> ir.Pred:
        if node.layer == "ether":
            return _mac_match(0, b"\xff" * 6)
        dst = self.load(ETH_HLEN + 16, 4)  # no interface netmask here: libpcap's offline netmask 0
        return ir.all_of(self.ethertype(ETHERTYPE_IP), ir.any_of(_eq(dst, 0), _eq(dst, 0xFFFFFFFF)))

    def _multicast(self, node: ast.Multicast) -> ir.Pred:
        if node.layer == "ether":
            return ir.Cmp("&", _load(0, 1), ir.Const(1))
        if node.layer == "ip":
            return ir.all_of(self.ethertype(ETHERTYPE_IP), ir.Cmp(">=", self.load(ETH_HLEN + 16, 1), ir.Const(224)))
        return ir.all_of(self.ethertype(ETHERTYPE_IPV6), _eq(self.load(ETH_HLEN + 24, 1), 0xFF))

    # -- ports ----------------------------------------------------------------------------------------
    def _port(self, node: ast.Port) -> ir.Pred:
        protos = [IP_PROTOCOLS[p][0] for p in ([node.q.proto] if node.q.proto else PORT_PROTOCOLS)]

        def in_range(port: ir.Expr) -> ir.Pred:
            if node.low == node.high:
                return _eq(port, node.low)
            return ir.all_of(ir.Cmp(">=", port, ir.Const(node.low)), ir.Not(ir.Cmp(">", port, ir.Const(node.high))))

        nl = ETH_HLEN
        v6 = ir.all_of(self.ethertype(ETHERTYPE_IPV6), ir.any_of(*(_eq(self.load(nl + 6, 1), p) for p in protos)),
                       _direction(node.q.dir, lambda at: in_range(self.load(at, 2)), nl + 40, nl + 42))
        l4 = ir.IPHeaderLen(self.at(nl))
        v4 = ir.all_of(
            self.ethertype(ETHERTYPE_IP), ir.any_of(*(_eq(self.load(nl + 9, 1), p) for p in protos)),
            self.first_fragment(),
            _direction(node.q.dir, lambda at: in_range(ir.Load(_add(l4, self.at(at)), 2)), nl, nl + 2))
        return ir.any_of(v6, v4)

    def first_fragment(self) -> ir.Pred:
        return ir.Not(ir.Cmp("&", self.load(ETH_HLEN + 6, 2), ir.Const(IP_OFFSET_MASK)))

    # -- relations ------------------------------------------------------------------------------------
    def _compare(self, node: ast.Compare) -> ir.Pred:
        guards: list[ir.Pred] = []
        left = self.arith(node.left, guards)
        right = self.arith(node.right, guards)
        op = node.op
        cmp = {
            "==": ir.Cmp("==", left, right), "!=": ir.Not(ir.Cmp("==", left, right)),
            ">": ir.Cmp(">", left, right), ">=": ir.Cmp(">=", left, right),
            "<": ir.Not(ir.Cmp(">=", left, right)), "<=": ir.Not(ir.Cmp(">", left, right)),
        }[op]
        unique = list(dict.fromkeys(guards))
        return ir.all_of(*unique, cmp)

    def arith(self, node: ast.Arith, guards: list[ir.Pred]) -> ir.Expr:
        if isinstance(node, ast.Num):
            return ir.Const(node.value)
        if isinstance(node, ast.Length):
            return ir.Len()
        if isinstance(node, ast.Negate):
            return ir.Neg(self.arith(node.operand, guards))
        if isinstance(node, ast.BinOp):
            left, right = self.arith(node.left, guards), self.arith(node.right, guards)
            if node.op in ("/", "%") and right == ir.Const(0):
                raise FilterError(node.column, "division by zero" if node.op == "/" else "modulus by zero")
            return ir.Bin(node.op, left, right)
        return self.index(node, guards)

    def index(self, node: ast.Index, guards: list[ir.Pred]) -> ir.Expr:
        offset = self.arith(node.offset, guards)
        proto = node.proto
        if proto == "ether":
            base: ir.Expr = ir.Const(0)
        elif proto in ETHERTYPES:
            guards.append(self.ethertype(ETHERTYPES[proto]))
            base = self.at(ETH_HLEN)
        elif proto == "icmp6":
            guards.extend([self.ethertype(ETHERTYPE_IPV6), _eq(self.load(ETH_HLEN + 6, 1), IP_PROTOCOLS["icmp6"][0])])
            base = self.at(ETH_HLEN + 40)
        elif proto in TRANSPORT_INDEXED:
            guards.extend([self.ip_proto(IP_PROTOCOLS[proto][0]), self.first_fragment()])
            base = _add(ir.IPHeaderLen(self.at(ETH_HLEN)), self.at(ETH_HLEN))
        else:
            raise FilterError(node.column, f"'{proto}[...]' is not supported: index ip[...] instead")
        return ir.Load(_add(base, offset), node.size)


def _add(base: ir.Expr, offset: ir.Expr) -> ir.Expr:
    """*base* + *offset*, constants folded (``IPHeaderLen + 14 + 13`` keeps one constant)."""
    if isinstance(offset, ir.Bin) and offset.op == "+" and isinstance(offset.right, ir.Const):
        return _add(_add(base, offset.left), offset.right)  # runtime part first, then the constant
    if isinstance(offset, ir.Const):
        if isinstance(base, ir.Const):
            return ir.Const(base.value + offset.value)
        if isinstance(base, ir.Bin) and base.op == "+" and isinstance(base.right, ir.Const):
            return ir.Bin("+", base.left, ir.Const(base.right.value + offset.value))
    if isinstance(base, ir.Bin) and base.op == "+" and isinstance(base.right, ir.Const):
        return ir.Bin("+", ir.Bin("+", base.left, offset), base.right)
    return ir.Bin("+", base, offset)


def _direction(direction: str | None, match, src: int, dst: int) -> ir.Pred:
    if direction == "src":
        return match(src)
    if direction == "dst":
        return match(dst)
    if direction == "src and dst":
        return ir.all_of(match(src), match(dst))
    return ir.any_of(match(src), match(dst))


def _address_match(lowering: _Lowering, at: int, network) -> ir.Pred:
    """The address at *at* is in *network*: one masked word compare per word the mask touches."""
    words = network.max_prefixlen // 32
    value, mask = int(network.network_address), int(network.netmask)
    parts = []
    for i in range(words):
        shift = 32 * (words - 1 - i)
        w, m = value >> shift & 0xFFFFFFFF, mask >> shift & 0xFFFFFFFF
        if m == 0:
            continue
        word: ir.Expr = lowering.load(at + 4 * i, 4)
        if m != 0xFFFFFFFF:
            word = ir.Bin("&", word, ir.Const(m))
        parts.append(_eq(word, w))
    if not parts:  # a /0 network: libpcap still asks for the family alone
        return ir.TRUE
    return ir.all_of(*parts)


def _mac_match(at: int, mac: bytes) -> ir.Pred:
    return ir.all_of(_eq(_load(at + 2, 4), int.from_bytes(mac[2:], "big")), _eq(_load(at, 2), int.from_bytes(mac[:2], "big")))
