"""Ethernet addresses as users type them (``02:00:0a:00:00:01``) and as frames carry them."""

from __future__ import annotations

import argparse
import re

_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}", re.ASCII)
BROADCAST = b"\xff" * 6


def parse(text: str) -> bytes:
    """argparse type: six hex bytes separated by ``:`` (or ``-``), as 6 bytes."""
    if not _MAC.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a MAC address (like 02:00:00:00:00:01)")
    return bytes.fromhex(text.replace(text[2], ""))

