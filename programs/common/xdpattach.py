"""XDP programs attached with pinned links, one pin per device (``link-IFINDEX``; bpffs refuses names with dots), for the
command tools (xdp-dummy, xdp-l2fwd): attached by one command, found and detached by another.

A link is pinned right after it is made, so a command killed in between leaves nothing
attached (the link's last descriptor closes with the process).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import socket
from typing import Any, Sequence

from pybpfasm.errors import UsageError
from pybpfasm.link import attach_xdp
from pybpfasm.link.base import FDLink
from pybpfasm.link.netns import entered
from pybpfasm.sys import SyscallError, object_info
from pybpfasm.sys.bpffs import open_pinned

from .options import ifname
from .pins import PinDir

LINK = "link-"
MODES = ("native", "skb")


def add_devices(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The ``DEV...`` arguments."""
    parser.add_argument("devices", metavar="DEV", nargs="+" if required else "*", type=ifname,
                        help="network device" + ("s" if required else "s (default: every one attached)"))


def add_mode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES,
                        help="native: in the driver; skb: generic XDP (default: native where "
                             "the driver has it)")


def ifindex_of(name: bytes | str, netns: str | None) -> int:
    """The index of device *name* in *netns*; one line if there is none."""
    text = name.decode(errors="backslashreplace") if isinstance(name, bytes) else name
    with entered(netns):
        try:
            return socket.if_nametoindex(text)
        except OSError:
            where = f" in network namespace {netns!r}" if netns else ""
            raise UsageError(f"no network device {text!r}{where}") from None


def name_of(ifindex: int, netns: str | None) -> str | None:
    with entered(netns):
        try:
            return socket.if_indextoname(ifindex)
        except OSError:
            return None


def attach(prog: Any, devices: Sequence[bytes], netns: str | None, mode: str | None,
           pin_dir: str) -> list[dict[str, Any]]:
    """Attach *prog* to each device and pin its link in *pin_dir*; rows of what was done.
    A device that already has an XDP program is refused (and nothing after it attached)."""
    rows: list[dict[str, Any]] = []
    try:
        for dev in devices:
            index = ifindex_of(dev, netns)
            name = dev.decode(errors="backslashreplace")
            try:
                link = attach_xdp(prog, index, mode=mode, netns=netns, via="link")
            except SyscallError as err:
                if err.errno in (errno.EBUSY, errno.EEXIST):
                    raise UsageError(f"{name} already has an XDP program attached "
                                     "(detach it first)") from None
                raise
            with link:
                assert isinstance(link, FDLink)
                link.pin(f"{pin_dir}/{LINK}{index}")
            rows.append({"dev": name, "ifindex": index, "mode": mode or "auto", "attached": True})
    except BaseException:
        for row in rows:  # all or nothing: undo this call's attachments
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{pin_dir}/{LINK}{row['ifindex']}")
        raise
    return rows


def pinned_links(pins: PinDir) -> dict[int, str]:
    """ifindex -> the pin of its link, for the links pinned in *pins*."""
    return {int(n[len(LINK):]): pins.file(n) for n in pins.names()
            if n.startswith(LINK) and n[len(LINK):].isdigit()}


def link_ifindex(path: str) -> int:
    """The device a pinned XDP link is attached to (0: its device is gone)."""
    with open_pinned(path) as fd:
        return int(object_info(fd.fileno(), "struct bpf_link_info").xdp.ifindex)


def detach(pins: PinDir, devices: Sequence[bytes]) -> list[dict[str, Any]]:
    """Unpin the links of *devices* (every pinned link when none are named); rows."""
    links = pinned_links(pins)
    chosen = {ifindex_of(d, pins.netns): d.decode(errors="backslashreplace") for d in devices}
    for index, name in chosen.items():
        if index not in links:
            raise UsageError(f"{name} has no XDP program of this tool attached")
    rows = []
    for index in chosen or links:
        pins.unpin(f"{LINK}{index}")
        rows.append({"dev": chosen.get(index) or name_of(index, pins.netns), "ifindex": index,
                     "attached": False})
    return rows
