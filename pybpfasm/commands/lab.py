"""``pybpfasm lab GROUP ...``: the lab's command groups, each a function ``f(argv, prog)``.

Groups are imported only when used; add a group with one line in :data:`GROUPS`.
"""

from __future__ import annotations

import argparse
import importlib

#: group -> ("module" whose ``main(argv, prog) -> int`` runs it, or "module:function", help)
GROUPS: dict[str, tuple[str, str]] = {
    "vm": ("pybpfasm.lab.vm.cli", "qemu micro-VMs on Debian or user-supplied kernels"),
    "up": ("pybpfasm.lab.netns.cli:up", "build a namespace topology (lab/topologies/NAME.toml)"),
    "down": ("pybpfasm.lab.netns.cli:down", "remove a topology's namespaces, leftovers included"),
    "list": ("pybpfasm.lab.netns.cli:list_", "topologies (up or down), the demo's tools and scenarios"),
    "demo": ("pybpfasm.lab.netns.cli:demo", "every tool on its known scenarios: expected vs observed"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    width = max(map(len, GROUPS))
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "groups:\n" + "\n".join(
        f"  {name:<{width}}  {help_}" for name, (_, help_) in GROUPS.items()
    )
    parser.add_argument(
        "group",
        choices=sorted(GROUPS),
        metavar="GROUP",
        help="one of: " + ", ".join(sorted(GROUPS)),
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the group's own arguments")


def run(args: argparse.Namespace) -> int:
    module, _, function = GROUPS[args.group][0].partition(":")
    entry = getattr(importlib.import_module(module), function or "main")
    return int(entry(args.args, prog=f"pybpfasm lab {args.group}"))
