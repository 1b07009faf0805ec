"""``pybpfasm asm``: assemble text into raw bytecode (8 bytes a slot) or a relocatable ELF object."""

from __future__ import annotations

import argparse
import re
import sys

from ..asm import assemble
from ..errors import UsageError
from ..isa import encode
from ..text import parse_unit
from ._io import read_input, write_output

#: file descriptors are non-negative C ints
_MAX_FD = (1 << 31) - 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="assembler text file ('-' for standard input)")
    parser.add_argument("-o", "--output", default="-",
                        help="output file (default: standard output); a name ending in .o gets an "
                             "ELF object")
    parser.add_argument("--format", choices=("auto", "raw", "elf"), default="auto",
                        help="raw bytecode or a relocatable ELF object (auto: elf for *.o)")
    parser.add_argument("--big-endian", action="store_true", help="emit big-endian bytecode")
    parser.add_argument("--long-jumps", action="store_true",
                        help="turn jumps beyond a 16-bit offset into gotol (raw bytecode)")
    parser.add_argument("--map", action="append", default=[], metavar="NAME=FD",
                        help="resolve map NAME to the numeric fd FD (raw bytecode; repeatable)")


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
    byteorder = "big" if args.big_endian else "little"
    unit = parse_unit(text, name, byteorder)
    elf = args.format == "elf" or (args.format == "auto" and args.output.endswith(".o"))
    if elf:
        if args.map or args.long_jumps:
            raise UsageError("--map and --long-jumps are for raw bytecode; an object's loader "
                             "resolves its maps")
        from ..objwrite import write_object

        data = write_object(unit, byteorder)
    else:
        if len({section for section, _ in unit.sections}) > 1 or unit.maps:
            raise UsageError("sections and .map definitions need an ELF object: -o FILE.o")
        insns = assemble(unit.instructions, maps=_maps(args.map), long_jumps=args.long_jumps)
        data = encode(insns, byteorder)
    if args.output == "-" and sys.stdout.isatty():
        raise UsageError(f"refusing to write {'an object' if elf else 'bytecode'} to a terminal; "
                         "use -o FILE")
    write_output(args.output, data)
    return 0
