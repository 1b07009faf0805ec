"""Option types and the run loop shared by the tools."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import time
from typing import Callable, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def ip_address(text: str) -> IPAddress:
    """argparse type: an IPv4 or IPv6 address."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 or IPv6 address") from None


def port(text: str) -> int:
    """argparse type: a TCP/UDP port number."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (0-65535)")
    return value


def run_until_done(reader, handle: Callable[[list], bool], duration: float | None) -> None:
    """Poll *reader* and pass batches to *handle* until it returns True, the
    duration ends, or the user stops it (Ctrl-C or SIGTERM).

    The signals only set a flag, so a batch already taken from the ring is
    always handled in full, and what is left in the ring is drained at the end.
    """
    stop = []
    handlers = {sig: signal.signal(sig, lambda *_: stop.append(True))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while not stop:
            timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            if handle(reader.poll(timeout)):
                return
            if deadline is not None and time.monotonic() >= deadline:
                break
        handle(reader.read())
    finally:
        for sig, previous in handlers.items():
            signal.signal(sig, previous)
