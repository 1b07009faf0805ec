"""argparse types for the tools' options: strict, range-checked, one clear line when wrong.

Numbers are ASCII digits only (``int()`` would also take ``٨٠``), floats must be
finite, and every value is checked against the range the kernel can hold.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
from typing import Callable, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

_DECIMAL = re.compile(r"[+-]?[0-9]+", re.ASCII)
_HEX = re.compile(r"0[xX][0-9a-fA-F]+", re.ASCII)
_FLOAT = re.compile(r"[+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
#: longest numeral accepted: far beyond any range here, far below int()'s digit limit
_MAX_DIGITS = 40


def _error(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def integer(low: int, high: int, noun: str = "number", hex_ok: bool = False) -> Callable[[str], int]:
    """argparse type: a decimal (or ``0x`` hex) integer in ``[low, high]``."""

    def parse(text: str) -> int:
        numeral = len(text) <= _MAX_DIGITS and (
            _DECIMAL.fullmatch(text) or (hex_ok and _HEX.fullmatch(text)))
        if not numeral:
            shown = text if len(text) <= _MAX_DIGITS else text[:20] + "..."
            raise _error(f"{shown!r} is not a valid {noun}")
        value = int(text, 16 if text[1:2] in ("x", "X") else 10)
        if not low <= value <= high:
            raise _error(f"{noun} {value} is out of range ({low}-{high})")
        return value

    parse.__name__ = noun  # argparse names the type in its messages
    return parse


def seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds."""
    if len(text) > _MAX_DIGITS or not _FLOAT.fullmatch(text):
        raise _error(f"{text[:20]!r} is not a number of seconds")
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise _error(f"{text!r} is not a positive number of seconds")
    return value


def ip_address(text: str) -> IPAddress:
    """argparse type: an IPv4 or IPv6 address."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _error(f"{text!r} is not an IPv4 or IPv6 address") from None


def ifname(text: str) -> bytes:
    """argparse type: an interface name, as the kernel stores it (1-15 bytes, no '/' or spaces)."""
    raw = os.fsencode(text)
    if not 0 < len(raw) < 16 or b"/" in raw or any(c <= 0x20 or c == 0x7F for c in raw):
        raise _error(f"{text!r} is not an interface name (1-15 bytes, no '/', spaces or controls)")
    return raw


port = integer(0, 65535, "port")
count = integer(1, 2**63 - 1, "count")
#: a network namespace inode (u32 in the kernel's ns_common)
netns_inode = integer(1, 2**32 - 1, "network namespace inode")
pid = integer(0, 2**22, "process id")
