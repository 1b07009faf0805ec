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


class _Terminated(Exception):
    """SIGTERM, turned into an exception so that cleanup runs as for Ctrl-C."""


def _on_term(signum: int, frame: object) -> None:
    raise _Terminated


def run_until_done(reader, handle: Callable[[list], bool], duration: float | None) -> None:
    """Poll *reader* and pass batches to *handle* until it returns True, the
    duration ends, or the user interrupts (Ctrl-C or SIGTERM: a clean stop)."""
    previous = signal.signal(signal.SIGTERM, _on_term)
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while True:
            timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            if handle(reader.poll(timeout)):
                return
            if deadline is not None and time.monotonic() >= deadline:
                handle(reader.read())
                return
    except (KeyboardInterrupt, _Terminated):
        handle(reader.read())
    finally:
        signal.signal(signal.SIGTERM, previous)
