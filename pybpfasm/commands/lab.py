"""``pybpfasm lab GROUP ...``: the lab's command groups, each a module with ``main(argv)``.

Groups are imported only when used; add a group with one line in :data:`GROUPS`.
"""

from __future__ import annotations

import argparse
import importlib

#: group -> (module providing ``main(argv, prog) -> int``, one-line help)
GROUPS: dict[str, tuple[str, str]] = {
    "vm": ("lab.vm.cli", "qemu micro-VMs on Debian or user-supplied kernels"),
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
    module = importlib.import_module(GROUPS[args.group][0])
    return int(module.main(args.args, prog=f"pybpfasm lab {args.group}"))
