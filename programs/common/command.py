"""The frame of command tools: subcommands that act and exit (``attach``, ``fdb add``,
``stats``, ``detach``), where a tracing tool (:mod:`.tool`) runs until stopped.

::

    class Dummy(CommandTool):
        def subcommands(self):
            return [Subcommand("attach", "attach to DEV...", self.attach, args=add_devices)]

        def attach(self, args) -> list[dict]:    # rows: JSON objects with --json, else text
            ...

A command tool that attaches something has ``attach DEV...`` and ``detach`` (test_every_tool
checks that nothing is left after ``detach``, and that a killed ``attach`` leaves all or
nothing).  Every subcommand takes ``--json`` (its rows as one object a line) and ``--netns NS`` (the
network namespace it acts in, a name under /run/netns).  Bad input ends in one line: argparse
errors exit 2, :class:`~pybpfasm.errors.UsageError` 2, kernel refusals 1.  The tool's help
lists every subcommand's usage, so ``pybpfasm TOOL --help`` shows all of them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

from pybpfasm.kernel import KernelError

from .output import Output

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Subcommand:
    """One subcommand: its name, help, options and what runs it (rows out)."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], Rows] | None = None
    args: Callable[[argparse.ArgumentParser], None] | None = None
    #: a row as a text line (default: its values separated by spaces)
    text: Callable[[dict[str, Any]], str] | None = None
    #: the text header before the rows (None: none)
    header: str | None = None
    #: subcommands of this one (``fdb add``); then it has no ``run`` of its own
    children: Sequence[Subcommand] = field(default_factory=tuple)


def netns_name(text: str) -> str:
    """argparse type: a network namespace name (as ``ip netns`` names it) or a path."""
    if not text or "\0" in text or len(text) > 255 or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a network namespace name")
    return text


class CommandTool:
    """Base class of command tools (see the module docstring)."""

    #: what the TOOLS registry and test_every_tool check this as
    kind: ClassVar[str] = "command"

    def subcommands(self) -> Sequence[Subcommand]:
        raise NotImplementedError

    def unavailable(self) -> str | None:
        """Why this kernel cannot run the tool at all (None: it can)."""
        return None

    # -- the frame ---------------------------------------------------------------------------
    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        usages = self._add(parser, self.subcommands())
        parser.epilog = "subcommands:\n" + "".join("  " + u.removeprefix("usage: ") for u in usages)

    def _add(self, parser: argparse.ArgumentParser, subcommands: Sequence[Subcommand]) -> list[str]:
        subs = parser.add_subparsers(dest=f"command_{id(subcommands)}", metavar="COMMAND", required=True)
        usages = []
        for sub in subcommands:
            child = subs.add_parser(sub.name, help=sub.help, description=sub.help)
            if sub.children:
                usages += self._add(child, sub.children)
                continue
            if sub.args is not None:
                sub.args(child)
            child.add_argument("--netns", metavar="NS", type=netns_name,
                               help="act in this network namespace (a name under /run/netns)")
            child.add_argument("--json", action="store_true", help="one JSON object a line")
            child.set_defaults(subcommand=sub)
            usages.append(child.format_usage())
        return usages

    def run(self, args: argparse.Namespace) -> int:
        why = self.unavailable()
        if why is not None:
            raise KernelError(f"cannot run on this kernel: {why}")
        sub: Subcommand = args.subcommand
        assert sub.run is not None
        rows = sub.run(args)
        out = Output(args.json, None)
        try:
            if not args.json and sub.header is not None:
                out.lines([sub.header])
            out.rows(rows, sub.text or _plain)
        finally:
            out.close()
        return 0


def _plain(row: dict[str, Any]) -> str:
    return " ".join("-" if v is None else str(v) for v in row.values())
