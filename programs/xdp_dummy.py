"""xdp-dummy: an XDP program that passes every frame, the replacement of bpf-progs' xdp_dummy.

A veth delivers frames redirected into it (``ndo_xdp_xmit``) only when its peer runs an
XDP program; this is that program.  ``attach`` pins one link per device under
``/sys/fs/bpf/pybpfasm/xdp-dummy/netns-INODE`` and exits; ``detach`` unpins them, which
detaches the program.

::

    pybpfasm xdp-dummy attach DEV... [--netns NS] [--mode native|skb]
    pybpfasm xdp-dummy detach [DEV...] [--netns NS]
"""

from __future__ import annotations

import argparse
from typing import Any

from pybpfasm.dsl import Collection, xdp

from .common import xdpattach
from .common.command import CommandTool, Rows, Subcommand
from .common.pins import PinDir

NAME = "xdp-dummy"


@xdp
def xdp_dummy(b, ctx) -> None:
    b.return_(b.btf.enum("xdp_action")["XDP_PASS"])


class XdpDummy(CommandTool):
    def subcommands(self) -> list[Subcommand]:
        def attach_args(p: argparse.ArgumentParser) -> None:
            xdpattach.add_devices(p)
            xdpattach.add_mode(p)

        return [
            Subcommand("attach", "attach xdp_dummy (XDP_PASS) to each DEV", self.attach, attach_args,
                       _text),
            Subcommand("detach", "detach it from each DEV (default: every device it is on)",
                       self.detach, lambda p: xdpattach.add_devices(p, required=False), _text),
        ]

    def attach(self, args: argparse.Namespace) -> Rows:
        pins = PinDir(NAME, args.netns)
        for dev in args.devices:
            xdpattach.ifindex_of(dev, args.netns)  # every name checked before anything is attached
        from pybpfasm.dsl.cache import ProgramCache

        with Collection(cache=ProgramCache(salt=(__name__,))) as coll:
            prog = coll.load(xdp_dummy)
            if not pins.exists():
                with pins.staging() as tmp:
                    return xdpattach.attach(prog, args.devices, args.netns, args.mode, tmp)
            return xdpattach.attach(prog, args.devices, args.netns, args.mode, pins.path)

    def detach(self, args: argparse.Namespace) -> Rows:
        pins = PinDir(NAME, args.netns)
        rows = xdpattach.detach(pins, args.devices)
        if not xdpattach.pinned_links(pins):
            pins.remove()
        return rows


def _text(row: dict[str, Any]) -> str:
    what = "attached to" if row["attached"] else "detached from"
    return f"{NAME} {what} {row['dev']} (ifindex {row['ifindex']})"


tool = XdpDummy()
