"""The ``pybpfasm`` command: one entry point, one module per subcommand.

Subcommand modules are imported only when used so that start-up stays fast.
Each module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from typing import NoReturn, Sequence

from .errors import BPFError

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "asm": ("pybpfasm.commands.asm", "assemble text into raw bytecode"),
    "disasm": ("pybpfasm.commands.disasm", "disassemble raw bytecode into text"),
    "btf": ("pybpfasm.commands.btf", "kernel types from BTF: struct layouts, field paths, enums, functions"),
    "lab": ("pybpfasm.commands.lab", "the lab: namespace topologies with known drops, the demo, qemu micro-VMs"),
    "features": ("pybpfasm.commands.features", "probe what the running kernel supports (program, map, attach types, helpers, BTF kinds)"),
    "dropmon": ("pybpfasm.tools.dropmon", "packet drop monitor: who, what, where and why, filtered in the kernel"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with bad options reported as one line (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: pybpfasm COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'pybpfasm COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from . import __version__

        print(f"pybpfasm {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"pybpfasm: unknown command {name!r} (try 'pybpfasm --help')", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = _Parser(prog=f"pybpfasm {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except BPFError as err:
        print(f"pybpfasm {name}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
