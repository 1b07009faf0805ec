"""Tokens of a pcap-filter expression, as libpcap's scanner cuts them.

Words follow libpcap's ``ID`` rule (letters, digits, ``-``, ``_`` and ``.``
inside: ``tcp-syn``, ``10-20``, ``1.2.3.4``); IPv6 and MAC addresses keep
their colons; ``\\name`` is a word that is never a keyword (``proto \\tcp``).
Numbers are decimal, ``0x`` hex or ``0`` octal, as libpcap reads them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .errors import FilterError

#: operators, longest first
OPERATORS = ("&&", "||", "<<", ">>", "<=", ">=", "==", "!=",
             "(", ")", "[", "]", ":", "+", "-", "*", "/", "%", "&", "|", "^", "!", "=", "<", ">")
_WORD = re.compile(r"[A-Za-z0-9](?:[-_.A-Za-z0-9]*[.A-Za-z0-9])?")
_COLONS = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
_ESCAPED = re.compile(r"\\([^ !()\n\t]+)")
_MAC = re.compile(r"[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){5}")
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]+|[0-9]+")
_OCTAL = re.compile(r"0[0-7]*")


@dataclass(frozen=True)
class Token:
    """``kind`` is ``num``, ``word``, ``name`` (escaped: never a keyword), ``op`` or ``end``."""

    kind: str
    text: str
    column: int
    value: int = 0


def number(text: str, column: int) -> int:
    """A numeral as libpcap reads it: ``0x`` hex, leading-``0`` octal, else decimal."""
    if text[:2] in ("0x", "0X"):
        value = int(text, 16)
    elif text.startswith("0"):
        if not _OCTAL.fullmatch(text):
            raise FilterError(column, f"{text!r} is not an octal number")
        value = int(text, 8)
    else:
        value = int(text)
    if value >= 1 << 32:
        raise FilterError(column, f"number {text} does not fit in 32 bits")
    return value


def _address_with_colons(text: str) -> bool:
    if _MAC.fullmatch(text):
        return True
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def tokenize(text: str) -> list[Token]:
    """The tokens of *text*, ending with an ``end`` token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        column = pos + 1
        if ch.isspace():
            pos += 1
            continue
        colons = _COLONS.match(text, pos)
        if colons and _address_with_colons(colons.group()):
            end = colons.end()
            tokens.append(Token("word", text[pos:end], column))
            pos = end
            continue
        escaped = _ESCAPED.match(text, pos)
        if escaped:
            tokens.append(Token("name", escaped.group(1), column))
            pos = escaped.end()
            continue
        word = _WORD.match(text, pos)
        if word:
            w = word.group()
            if _NUMBER.fullmatch(w):
                tokens.append(Token("num", w, column, number(w, column)))
            else:
                tokens.append(Token("word", w, column))
            pos = word.end()
            continue
        op = next((o for o in OPERATORS if text.startswith(o, pos)), None)
        if op is None:
            raise FilterError(column, f"unexpected character {ch!r}")
        tokens.append(Token("op", op, column))
        pos += len(op)
    tokens.append(Token("end", "", len(text) + 1))
    return tokens
