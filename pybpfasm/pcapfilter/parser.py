"""A recursive-descent parser for libpcap's filter grammar (``pcap-filter(7)``).

Precedence and associativity are libpcap's: ``and`` and ``or`` have the
same precedence and group from the left (``a or b and c`` is
``(a or b) and c``), ``not`` binds tighter; in arithmetic ``^`` is loosest,
then ``|``, ``&``, shifts, ``+ -``, ``* / %`` and unary ``-``.

A bare value after ``and``/``or`` takes the qualifiers of the primitive
before it (``port 80 or 443``), as in libpcap; after a parenthesis or a
protocol alone it is an error there too.
"""

from __future__ import annotations

import ipaddress
from typing import Callable

from . import ast
from .errors import FilterError
from .lexer import Token, tokenize
from .names import (
    CONSTANTS,
    ETHER_PROTOCOLS,
    INDEXABLE,
    IP_PROTOCOLS,
    PORT_PROTOCOLS,
    ip_protocol,
    service_ports,
)

PROTO_QUALS = ("ether", "link", "ip", "ip6", "arp", "rarp", *IP_PROTOCOLS)
DIRS = ("src", "dst")
TYPES = ("host", "net", "port", "portrange", "proto", "gateway")
KEYWORDS = {"and", "or", "not", "vlan", "less", "greater", "len", "broadcast", "multicast", "mask",
            *PROTO_QUALS, *DIRS, *TYPES}
RELOPS = ("==", "=", "!=", ">=", "<=", ">", "<")
#: binary arithmetic operators, loosest first
ARITH_LEVELS = (("^",), ("|",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "%"))
ARITH_OPS = {op for level in ARITH_LEVELS for op in level}
#: qualifiers of a bare value at the start of an expression (libpcap's qdefault)
DEFAULT = ast.Qualifiers()
#: how deep parentheses, 'not' and unary minus may nest
MAX_DEPTH = 100


def parse(text: str) -> ast.Node:
    """The syntax tree of *text*; :class:`FilterError` with the column of the first error."""
    if not text.strip():
        raise FilterError(1, "empty expression")
    return _Parser(tokenize(text)).parse()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.i, self.depth = tokens, 0, 0

    def nested(self, parse: Callable[[], object]) -> object:
        """*parse()* one level deeper (an error past :data:`MAX_DEPTH`)."""
        if self.depth >= MAX_DEPTH:
            raise FilterError(self.tok.column, f"nested more than {MAX_DEPTH} deep")
        self.depth += 1
        try:
            return parse()
        finally:
            self.depth -= 1

    # -- tokens ------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tok
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("op", "word") and self.tok.text in texts

    def expect(self, text: str) -> Token:
        if not self.at(text):
            raise self.error(f"expected {text!r}")
        return self.next()

    def error(self, what: str, tok: Token | None = None) -> FilterError:
        tok = tok or self.tok
        found = "the end of the expression" if tok.kind == "end" else repr(tok.text)
        return FilterError(tok.column, f"{what}, found {found}")

    # -- boolean structure ---------------------------------------------------------------------
    def parse(self) -> ast.Node:
        node, _ = self.expr(DEFAULT)
        if self.tok.kind != "end":
            raise self.error("expected 'and', 'or' or the end")
        return node

    def expr(self, q: ast.Qualifiers | None) -> tuple[ast.Node, ast.Qualifiers | None]:
        node, q = self.term(q)
        while self.at("and", "&&", "or", "||"):
            op = self.next()
            if self.bare_value():
                right = self.value(q, self.next())
            else:
                right, q = self.term(q)
            kind = ast.And if op.text in ("and", "&&") else ast.Or
            node = kind(node, right, op.column)
        return node, q

    def bare_value(self) -> bool:
        """A value with no qualifier before it (and no arithmetic after it)."""
        tok = self.tok
        value = tok.kind in ("num", "name") or (tok.kind == "word" and tok.text not in KEYWORDS
                                                and tok.text not in CONSTANTS)
        nxt = self.peek()
        return value and not (nxt.kind == "op" and (nxt.text in ARITH_OPS or nxt.text in RELOPS))

    def term(self, q: ast.Qualifiers | None) -> tuple[ast.Node, ast.Qualifiers | None]:
        tok = self.tok
        if self.at("not", "!"):
            self.next()
            node, q = self.nested(lambda: self.term(q))
            return ast.Not(node, tok.column), q
        if self.at("("):
            return self.nested(lambda: self.group(q)), None
        if self.starts_arith():
            return self.relation(), None
        return self.primitive()

    def group(self, q: ast.Qualifiers | None) -> ast.Node:
        """``( expr )``, or a relation that starts with a parenthesised arithmetic term."""
        start = self.i
        try:
            return self.relation()
        except FilterError as arith_error:
            self.i = start
            self.next()
            try:
                node, _ = self.expr(q)
                self.expect(")")
            except FilterError as bool_error:  # report the attempt that got further
                raise max(arith_error, bool_error, key=lambda e: e.column) from None
            return node

    def starts_arith(self) -> bool:
        tok, nxt = self.tok, self.peek()
        if tok.kind == "op":
            return tok.text == "-"
        if tok.kind == "word" and tok.text in INDEXABLE and nxt.text == "[" and nxt.kind == "op":
            return True
        if tok.kind == "word" and (tok.text == "len" or tok.text in CONSTANTS):
            return True
        return tok.kind == "num" and nxt.kind == "op" and (nxt.text in ARITH_OPS or nxt.text in RELOPS)

    # -- relations and arithmetic -----------------------------------------------------------------
    def relation(self) -> ast.Compare:
        column = self.tok.column
        left = self.arith()
        if not (self.tok.kind == "op" and self.tok.text in RELOPS):
            raise self.error("expected a comparison (=, !=, <, <=, >, >=)")
        op = self.next().text
        right = self.arith()
        if self.tok.kind == "op" and self.tok.text in RELOPS:
            raise self.error("comparisons do not chain")
        return ast.Compare("==" if op == "=" else op, left, right, column)

    def arith(self, level: int = 0) -> ast.Arith:
        if level == len(ARITH_LEVELS):
            return self.unary()
        left = self.arith(level + 1)
        while self.tok.kind == "op" and self.tok.text in ARITH_LEVELS[level]:
            op = self.next()
            left = ast.BinOp(op.text, left, self.arith(level + 1), op.column)
        return left

    def unary(self) -> ast.Arith:
        tok = self.tok
        if self.at("-"):
            self.next()
            return ast.Negate(self.nested(self.unary), tok.column)
        if self.at("("):
            self.next()
            inner = self.nested(self.arith)
            self.expect(")")
            return inner
        if tok.kind == "num":
            self.next()
            return ast.Num(tok.value, tok.column)
        if tok.kind == "word" and tok.text == "len":
            self.next()
            return ast.Length(tok.column)
        if tok.kind == "word" and tok.text in CONSTANTS:
            self.next()
            return ast.Num(CONSTANTS[tok.text], tok.column)
        if tok.kind == "word" and tok.text in INDEXABLE and self.peek().text == "[":
            self.next()
            self.next()
            offset = self.nested(self.arith)
            size = 1
            if self.at(":"):
                self.next()
                size_tok = self.tok
                if size_tok.kind != "num" or size_tok.value not in (1, 2, 4):
                    raise FilterError(size_tok.column, "the size of a field must be 1, 2 or 4")
                size = self.next().value
            self.expect("]")
            return ast.Index("ether" if tok.text == "link" else tok.text, offset, size, tok.column)
        raise self.error("expected a number, 'len' or a header field such as tcp[13]")

    # -- primitives ------------------------------------------------------------------------------
    def primitive(self) -> tuple[ast.Node, ast.Qualifiers | None]:
        tok = self.tok
        if tok.kind == "word":
            special = self.special()
            if special is not None:
                return special, None
        proto = dir_ = type_ = None
        if self.at(*PROTO_QUALS):
            proto = self.next().text
            if proto == "link":
                proto = "ether"
            if self.at("proto") and proto in ("ether", "ip", "ip6"):
                self.next()
                return self.proto(proto, tok.column), None
            if self.at("broadcast", "multicast") and proto in ("ether", "ip", "ip6"):
                which = self.next()
                kind = ast.Broadcast if which.text == "broadcast" else ast.Multicast
                if kind is ast.Broadcast and proto == "ip6":
                    raise FilterError(which.column, "IPv6 has no broadcast (use 'ip6 multicast')")
                return kind(proto, tok.column), None
            if not self.at(*DIRS, *TYPES):
                if proto == "ether":
                    raise self.error("'ether' needs host, src, dst, proto, broadcast or multicast")
                return ast.Protocol(proto, tok.column), None
        if self.at(*DIRS):
            dir_ = self.next().text
            if self.at("and", "or") and self.peek().text in DIRS and self.peek().text != dir_:
                dir_ = f"src {self.next().text} dst"
                self.next()
        if self.at(*TYPES):
            type_ = self.next().text
            if type_ == "proto":
                return self.proto(proto, tok.column), None
        q = ast.Qualifiers(proto, dir_, type_)
        if self.tok.kind not in ("num", "word", "name") or (self.tok.kind == "word" and self.tok.text in KEYWORDS):
            raise self.error("expected an address, a port or a name" if proto or dir_ or type_
                             else "expected a filter primitive (host, net, port, tcp, ip, vlan...)")
        if q == DEFAULT:
            raise self.error("a value needs a qualifier before it (host, net, port...)", self.tok)
        return self.value(q, self.next(), tok.column), q

    def special(self) -> ast.Node | None:
        """``vlan [ID]``, ``less N``, ``greater N``, ``broadcast``, ``multicast``, or None."""
        tok = self.tok
        if tok.text == "vlan":
            self.next()
            vid = None
            if self.tok.kind == "num":
                vid = self.next().value
                if vid > 0xFFF:
                    raise FilterError(self.peek(-1).column, f"VLAN ID {vid} is greater than 4095")
            return ast.Vlan(vid, tok.column)
        if tok.text in ("less", "greater"):
            self.next()
            if self.tok.kind != "num":
                raise self.error(f"'{tok.text}' needs a length")
            n = ast.Num(self.next().value, self.peek(-1).column)
            return ast.Compare("<=" if tok.text == "less" else ">=", ast.Length(tok.column), n, tok.column)
        if tok.text in ("broadcast", "multicast"):
            self.next()
            return (ast.Broadcast if tok.text == "broadcast" else ast.Multicast)("ether", tok.column)
        return None

    def proto(self, layer: str | None, column: int) -> ast.Proto:
        tok = self.next()
        if tok.kind == "num":
            number = tok.value
        elif tok.kind in ("word", "name"):
            known = ETHER_PROTOCOLS.get(tok.text) if layer == "ether" else ip_protocol(tok.text)
            if known is None:
                raise FilterError(tok.column, f"unknown {'ether' if layer == 'ether' else 'ip'} protocol {tok.text!r}")
            if tok.kind == "word" and tok.text in KEYWORDS:
                raise FilterError(tok.column, f"{tok.text!r} is a keyword here: write \\{tok.text}")
            number = known
        else:
            raise self.error("expected a protocol number or name", tok)
        if layer == "ether" and number <= 1500:
            raise FilterError(tok.column, f"ether proto {number} is an 802.3 length: not supported")
        return ast.Proto(layer, number, column)

    # -- values under qualifiers -----------------------------------------------------------------
    def value(self, q: ast.Qualifiers | None, tok: Token, column: int | None = None) -> ast.Node:
        """The primitive value *tok* makes under qualifiers *q*."""
        column = column or tok.column
        if q is None:
            raise FilterError(tok.column, "a value needs a qualifier before it (host, net, port...)")
        kind = q.type or "host"
        if kind == "gateway":
            raise FilterError(tok.column, "'gateway' needs host name lookups: not supported")
        if kind in ("port", "portrange"):
            return self.port(q, tok, column)
        if q.proto in PORT_PROTOCOLS or q.proto in IP_PROTOCOLS:
            raise FilterError(column, f"'{q.proto}' takes port or portrange, not {kind}")
        if kind == "net":
            return ast.Net(q, self.network(tok), column)
        mac = _mac(tok.text) if tok.kind != "num" else None
        if mac is not None or q.proto == "ether":
            if mac is None:
                raise FilterError(tok.column, f"{tok.text!r} is not a MAC address")
            if q.proto not in (None, "ether"):
                raise FilterError(column, f"a MAC address needs 'ether host', not '{q.proto} host'")
            return ast.EtherHost(q.dir, mac, column)
        if tok.kind == "num":
            return ast.Host(q, ipaddress.IPv4Address(tok.value), column)
        address = _address(tok)
        if isinstance(address, ipaddress.IPv4Network):
            return ast.Net(q, address, column)
        return ast.Host(q, address, column)

    def network(self, tok: Token) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        if tok.kind == "num":  # a short net number: 10 is 10.0.0.0/8
            value, bits = tok.value, 32
            while value and not value & 0xFF000000:
                value, bits = value << 8, bits - 8
            base = ipaddress.IPv4Network((value, bits))
        else:
            base = _address(tok)
        if self.at("/"):
            self.next()
            length = self.next()
            width = 32 if base.version == 4 else 128
            if length.kind != "num" or length.value > width:
                raise FilterError(length.column, f"prefix length must be 0-{width}")
            addr = base.network_address if isinstance(base, ipaddress._BaseNetwork) else base
            return _masked(ipaddress.ip_network((addr, length.value), strict=False), addr, tok)
        if self.at("mask"):
            self.next()
            mask_tok = self.next()
            try:
                mask = ipaddress.IPv4Address(mask_tok.text)
                addr = base.network_address if isinstance(base, ipaddress._BaseNetwork) else base
                net = ipaddress.IPv4Network(f"{addr}/{mask}", strict=False)
            except ValueError:
                raise FilterError(mask_tok.column, f"{mask_tok.text!r} is not an IPv4 netmask") from None
            return _masked(net, addr, tok)
        if isinstance(base, ipaddress._BaseNetwork):
            return base
        return ipaddress.ip_network(base)

    def port(self, q: ast.Qualifiers, tok: Token, column: int) -> ast.Port:
        proto = q.proto
        if proto not in (None, *PORT_PROTOCOLS):
            raise FilterError(column, f"'{proto}' has no ports")
        if q.type == "port":
            number, proto = _port_number(tok.text if tok.kind != "num" else tok.value, tok, proto)
            return ast.Port(ast.Qualifiers(proto, q.dir, "port"), number, number, column)
        text = tok.text
        low_text, sep, high_text = text.partition("-")
        if tok.kind == "num":
            low_text = high_text = text
        elif not sep:
            raise FilterError(tok.column, f"{text!r} is not a port range (LOW-HIGH)")
        low, proto = _port_number(low_text, tok, proto)
        high, proto = _port_number(high_text, tok, proto)
        low, high = min(low, high), max(low, high)
        return ast.Port(ast.Qualifiers(proto, q.dir, "portrange"), low, high, column)


def _port_number(value: str | int, tok: Token, proto: str | None) -> tuple[int, str | None]:
    """A port number (or service name) and the protocol it narrows *proto* to."""
    if isinstance(value, int) or value.isdigit():
        number = int(value)
        if number > 0xFFFF:
            raise FilterError(tok.column, f"port {number} is greater than 65535")
        return number, proto
    tcp, udp = service_ports(value)
    if tcp is None and udp is None:
        raise FilterError(tok.column, f"unknown port {value!r}")
    if tcp is not None and udp is not None and tcp != udp:
        raise FilterError(tok.column, f"port {value!r} has different tcp and udp numbers")
    if tcp is None or udp is None:
        only = "tcp" if udp is None else "udp"
        if proto not in (None, only):
            raise FilterError(tok.column, f"port {value!r} is {only}")
        return (tcp if udp is None else udp), only
    return tcp, proto


def _mac(text: str) -> bytes | None:
    """A MAC address in any of libpcap's spellings, else None."""
    for sep in (":", ".", "-"):
        parts = text.split(sep)
        if len(parts) == 6 and all(1 <= len(p) <= 2 for p in parts):
            try:
                return bytes(int(p, 16) for p in parts)
            except ValueError:
                return None
    return None


def _address(tok: Token) -> ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network:
    """A full IPv4/IPv6 address, or a partial IPv4 one (``10.1``) as the network it names."""
    text = tok.text
    if tok.kind == "word" and ":" not in text:
        parts = text.split(".")
        if 1 <= len(parts) < 4 and all(p.isdigit() for p in parts):
            octets = [int(p) for p in parts]
            if all(o < 256 for o in octets):
                value = int.from_bytes(bytes(octets + [0] * (4 - len(octets))), "big")
                return ipaddress.IPv4Network((value, 8 * len(octets)))
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if tok.kind == "word" and all(c.isalnum() or c in "-." for c in text):
        raise FilterError(tok.column, f"{text!r} is not an address (host names are not looked up)")
    raise FilterError(tok.column, f"{text!r} is not an address")


def _masked(net, addr, tok: Token):
    if net.network_address != addr:
        raise FilterError(tok.column, f"non-network bits set in {tok.text!r}")
    return net


__all__ = ["parse"]
