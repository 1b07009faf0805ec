"""The grammar: trees for good expressions (libpcap's precedence and qualifier rules),
one line with the right column for bad ones, which libpcap rejects too."""

from __future__ import annotations

import ipaddress

import pytest

from pybpfasm import pcapfilter
from pybpfasm.errors import UsageError
from pybpfasm.pcapfilter import ast

from . import libpcap

pytestmark = pytest.mark.unprivileged


def q(proto=None, dir=None, type=None) -> ast.Qualifiers:
    return ast.Qualifiers(proto, dir, type)


def tree(text: str) -> ast.Node:
    return pcapfilter.compile(text).tree


def test_and_or_have_one_precedence_and_group_from_the_left():
    t = tree("tcp or udp and icmp")
    assert isinstance(t, ast.And) and isinstance(t.left, ast.Or)
    assert t.right == ast.Protocol("icmp", 16)


def test_not_binds_tighter_and_keeps_the_qualifiers():
    t = tree("not port 80 or 443")
    assert isinstance(t, ast.Or) and isinstance(t.left, ast.Not)
    assert t.right == ast.Port(q(None, None, "port"), 443, 443, 16)


def test_a_bare_value_takes_the_last_qualifiers():
    t = tree("tcp dst port 80 or 443 and src host 10.0.0.1 or 10.0.0.2")
    last = t.right
    assert last == ast.Host(q(None, "src", "host"), ipaddress.IPv4Address("10.0.0.2"), 49)
    assert t.left.left.right == ast.Port(q("tcp", "dst", "port"), 443, 443, 20)


def test_arithmetic_precedence_is_libpcaps():
    t = tree("ip[0] ^ 1 | 2 & 3 = 1")  # ^ loosest, then |, then &
    left = t.left
    assert left.op == "^" and left.right.op == "|" and left.right.right.op == "&"
    t = tree("ip[0] + 1 * 2 << 1 = 3")  # shifts looser than + -, which are looser than * / %
    assert t.left.op == "<<" and t.left.left.op == "+" and t.left.left.right.op == "*"


def test_a_parenthesis_opens_arithmetic_or_a_group():
    assert isinstance(tree("(ip[0] & 0xf) > 5"), ast.Compare)
    assert isinstance(tree("(tcp and port 80) or udp"), ast.Or)
    assert isinstance(tree("((ip[0]) + 1) = 2 and (udp)"), ast.And)


def test_values_as_libpcap_reads_them():
    assert tree("host 10.1") == ast.Net(q(None, None, "host"), ipaddress.IPv4Network("10.1.0.0/16"), 1)
    assert tree("net 10").network == ipaddress.IPv4Network("10.0.0.0/8")
    assert tree("host 10").address == ipaddress.IPv4Address("0.0.0.10")  # a number is a whole address
    assert tree("net 192.168.0.0 mask 255.255.0.0").network == ipaddress.IPv4Network("192.168.0.0/16")
    assert tree("port 010").low == 8  # octal
    assert tree("portrange 20-10") == ast.Port(q(None, None, "portrange"), 10, 20, 1)
    assert tree("ether src 2:0:0:0:0:1") == ast.EtherHost("src", bytes.fromhex("020000000001"), 1)
    assert tree("ip proto \\udp") == ast.Proto("ip", 17, 1)
    assert tree("tcp[tcpflags] & tcp-syn != 0").left.right == ast.Num(2, 17)
    assert tree("icmp[icmptype] = icmp-echo").right == ast.Num(8, 18)


BAD = [  # (expression, column, part of the message)
    ("", 1, "empty expression"),
    ("tcp port", 9, "expected an address, a port or a name"),
    ("host 1.2.3.4 and", 17, "expected a filter primitive"),
    ("tcp[13] & ", 11, "expected a number"),
    ("port 99999", 6, "greater than 65535"),
    ("(tcp", 5, "expected ')'"),
    ("tcp)", 4, "expected 'and', 'or' or the end"),
    ("ip[0] == 1 == 2", 12, "comparisons do not chain"),
    ("tcp[1:3] = 1", 7, "size of a field must be 1, 2 or 4"),
    ("ip[0] / 0 = 1", 7, "division by zero"),
    ("ip[0] % 0 = 1", 7, "modulus by zero"),
    ("vlan 5000", 6, "greater than 4095"),
    ("net 10.0.0.1/8", 5, "non-network bits set"),
    ("net 10.0.0.0/33", 14, "prefix length"),
    ("foo", 1, "needs a qualifier"),
    ("10.0.0.1", 1, "needs a qualifier"),
    ("tcp or 80", 8, "needs a qualifier"),
    ("host 1.2.3.4.5", 6, "not an address"),
    ("ip host ::1", 1, "needs 'ip6'"),
    ("ip6 host 1.2.3.4", 1, "not 'ip6'"),
    ("tcp host 1.2.3.4", 1, "takes port or portrange"),
    ("icmp port 80", 1, "has no ports"),
    ("ip proto \\nosuch", 10, "unknown ip protocol"),
    ("ip proto tcp", 10, "write \\tcp"),
    ("ether", 6, "'ether' needs"),
    ("not", 4, "expected a filter primitive"),
    ("and tcp", 1, "expected a filter primitive"),
    ("tcp port 80 $", 13, "unexpected character"),
    ("ip6 broadcast", 5, "no broadcast"),
    ("less", 5, "needs a length"),
    ("tcp port nosuchservice", 10, "unknown port"),
    ("09", 1, "not an octal number"),
    ("ah[0] = 1", 1, "not supported"),
    ("ether host 1:2:3", 12, "not a MAC address"),
    ("gateway 1.2.3.4", 9, "not supported"),
    ("ip[0] = 4294967296", 9, "does not fit in 32 bits"),
]
#: accepted by libpcap, refused here (see the README): 802.3 length fields as ether proto
LIBPCAP_ONLY = {"ether proto 100"}


@pytest.mark.parametrize("text, column, words", BAD)
def test_a_bad_expression_is_one_line_with_its_column(text, column, words):
    with pytest.raises(pcapfilter.FilterError) as info:
        pcapfilter.compile(text)
    err = info.value
    assert isinstance(err, UsageError) and err.exit_code == 2
    assert err.column == column and str(err) == f"filter: column {column}: {err.reason}"
    assert words in err.reason and "\n" not in str(err)


@pytest.mark.skipif(libpcap.tcpdump() is None, reason="tcpdump (libpcap) is not installed")
@pytest.mark.parametrize("text", [t for t, _, _ in BAD if t] + sorted(LIBPCAP_ONLY))
def test_libpcap_rejects_them_too(text, tmp_path):
    assert libpcap.compiles(text, str(tmp_path)) == (text in LIBPCAP_ONLY)


def test_argparse_type_gives_the_same_line():
    with pytest.raises(Exception) as info:
        pcapfilter.argument("tcp port")
    assert str(info.value) == "filter: column 9: expected an address, a port or a name, found the end of the expression"


@pytest.mark.parametrize("text", ["(" * 2000, "not " * 3000 + "tcp", "ip[" * 500, "\x00", "tcp port \u0668\u0660",
                                  " or ".join(["tcp"] * 5000), "+".join(["ip[0]"] * 3000) + " = 1", "a" * 100000])
def test_hostile_input_is_a_filter_error(text):
    with pytest.raises(pcapfilter.FilterError) as info:
        pcapfilter.compile(text)
    assert "\n" not in str(info.value)


def test_deep_but_reasonable_nesting_compiles():
    pcapfilter.compile("(" * 99 + "tcp" + ")" * 99)
