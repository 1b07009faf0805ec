"""The ``pybpfasm`` command: one entry point, one module per subcommand.

Library subcommands are listed here; tools register themselves in
:data:`pybpfasm.tools.TOOLS` (with the names of the scripts they replace).
Modules are imported only when used, so start-up stays fast.  A library
command module provides ``add_arguments(parser)`` and ``run(args) -> int``; a
tool module provides ``tool``, whose ``configure`` and ``run`` do the same.

Every command shares one error path: errors a user can cause (bad input,
what the kernel refused, a full disk, a closed pipe, Ctrl-C) end in one line
on stderr and a non-zero status, never a traceback.  Run as a program named
after a tool or alias (a symlink to ``pybpfasm``), that tool runs.
"""

from __future__ import annotations

import signal

if __name__ == "__main__":  # run as a program: until main() runs, Ctrl-C ends it quietly
    signal.signal(signal.SIGINT, signal.SIG_DFL)

import os
import sys
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

from .errors import BPFError

if TYPE_CHECKING:  # pragma: no cover
    import argparse

# Nothing heavier is imported before main() runs: an interrupt during imports
# would end in a traceback, and main() turns it into a quiet exit.

#: library subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "asm": ("pybpfasm.commands.asm", "assemble text into raw bytecode"),
    "disasm": ("pybpfasm.commands.disasm", "disassemble raw bytecode into text"),
    "btf": ("pybpfasm.commands.btf", "kernel types from BTF: struct layouts, field paths, enums, functions"),
    "lab": ("pybpfasm.commands.lab", "the lab: namespace topologies with known drops, the demo, qemu micro-VMs"),
    "features": ("pybpfasm.commands.features", "probe what the running kernel supports (program, map, attach types, helpers, BTF kinds)"),
}


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser that reports bad options as one line (exit status 2)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            self.exit(2, f"{self.prog}: {message}\n")

    return Parser(prog=prog, description=description)


def _usage() -> str:
    from .tools import TOOLS

    rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
    rows += [(name, entry.help) for name, entry in TOOLS.items()]
    width = max(len(name) for name, _ in rows)
    lines = ["usage: pybpfasm COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, help_ in rows]
    aliases = [f"{alias} ({name})" for name, entry in TOOLS.items() for alias in entry.aliases]
    if aliases:
        lines += ["", "also answers to: " + ", ".join(aliases)]
    lines += ["", "Run 'pybpfasm COMMAND --help' for a command's options."]
    return "\n".join(lines)


def _command(name: str) -> tuple[str, Any, str] | None:
    """(canonical name, what runs it, help) of subcommand *name*, or None."""
    if name in COMMANDS:
        import importlib

        module, help_ = COMMANDS[name]
        return name, importlib.import_module(module), help_
    from .tools import lookup

    found = lookup(name)
    if found is None:
        return None
    import importlib

    tool, entry = found
    module = importlib.import_module(f"pybpfasm.tools.{entry.module}")
    return tool, module.tool, entry.help


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    if argv is None:
        argv = sys.argv[1:]
        invoked = os.path.basename(sys.argv[0])
        if invoked not in ("pybpfasm", "cli.py", "__main__.py", "-c") and _known(invoked):
            argv = [invoked, *argv]
    argv = list(argv)
    return guarded(argv[0] if argv else "pybpfasm", lambda: _main(argv))


def guarded(name: str, command: Callable[[], int]) -> int:
    """Run *command* with the one error path every command shares; its exit status."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if sys.stdout is None:
        print("pybpfasm: standard output is closed", file=sys.stderr)
        return 2
    sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    try:
        status = command()
        sys.stdout.flush()
        return status
    except BPFError as err:
        print(f"pybpfasm {name}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except OSError as err:
        _quiet_stdout()
        where = f": {err.filename}" if err.filename else " (writing the output)"
        print(f"pybpfasm {name}: {err.strerror or err}{where}", file=sys.stderr)
        return 1


def run_tool(tool: Any, name: str, argv: Sequence[str], help_: str = "") -> int:
    """Parse *argv* for *tool* (a :class:`~pybpfasm.tools.common.tool.Tool`) and run it."""

    def command() -> int:
        parser = _parser(f"pybpfasm {name}", help_)
        tool.configure(parser)
        return int(tool.run(parser.parse_args(list(argv))) or 0)

    return guarded(name, command)


def _known(name: str) -> bool:
    from .tools import lookup

    return lookup(name) is not None


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from . import __version__

        print(f"pybpfasm {__version__}")
        return 0
    found = _command(argv[0])
    if found is None:
        print(f"pybpfasm: unknown command {argv[0]!r} (try 'pybpfasm --help')", file=sys.stderr)
        return 2
    name, runner, help_ = found
    parser = _parser(f"pybpfasm {name}", help_)
    if hasattr(runner, "configure"):
        runner.configure(parser)
    else:
        runner.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return int(runner.run(args) or 0)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
