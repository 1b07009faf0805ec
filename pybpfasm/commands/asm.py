"""``pybpfasm asm``: assemble text into raw bytecode (8 bytes a slot, no ELF)."""

from __future__ import annotations

import argparse
import re
import sys

from ..asm import assemble
from ..errors import UsageError
from ..isa import encode
from ..text import parse
from ._io import read_input, write_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="assembler text file ('-' for standard input)")
    parser.add_argument("-o", "--output", default="-",
                        help="bytecode output file (default: standard output)")
    parser.add_argument("--big-endian", action="store_true", help="emit big-endian bytecode")
    parser.add_argument("--long-jumps", action="store_true",
                        help="turn jumps beyond a 16-bit offset into gotol")
    parser.add_argument("--map", action="append", default=[], metavar="NAME=FD",
                        help="resolve map NAME to the numeric fd FD (repeatable)")


#: file descriptors are non-negative C ints
_MAX_FD = (1 << 31) - 1


def _maps(specs: list[str]) -> dict[str, int]:
    maps = {}
    for spec in specs:
        name, sep, fd = spec.partition("=")
        if not sep or not name or not re.fullmatch(r"[0-9]+", fd):
            raise UsageError(f"--map wants NAME=FD with FD in ASCII digits, got {spec[:60]!r}")
        if len(fd) > 10 or int(fd) > _MAX_FD:
            raise UsageError(f"--map {name[:40]}: fd {fd[:20]}{'...' if len(fd) > 20 else ''} "
                             f"out of range [0, {_MAX_FD}]")
        maps[name] = int(fd)
    return maps


def run(args: argparse.Namespace) -> int:
    text, name = read_input(args.source, binary=False)
    insns = assemble(parse(text, name), maps=_maps(args.map), long_jumps=args.long_jumps)
    data = encode(insns, "big" if args.big_endian else "little")
    if args.output == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write bytecode to a terminal; use -o FILE")
    write_output(args.output, data)
    return 0
