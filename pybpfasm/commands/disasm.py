"""``pybpfasm disasm``: disassemble raw bytecode into LLVM-syntax text."""

from __future__ import annotations

import argparse
import sys

from ..text import dis, disassemble, format_program
from ._io import read_input


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bytecode", help="raw bytecode file ('-' for standard input)")
    parser.add_argument("--big-endian", action="store_true", help="read big-endian bytecode")
    parser.add_argument("--labels", action="store_true",
                        help="name jump targets with labels instead of offsets")
    parser.add_argument("--raw", action="store_true",
                        help="listing with slot numbers and bytes, like objdump")
    parser.add_argument("--hex", action="store_true",
                        help="immediates and offsets in hex (llvm-objdump's default since LLVM 19)")


def run(args: argparse.Namespace) -> int:
    data, _ = read_input(args.bytecode, binary=True)
    byteorder = "big" if args.big_endian else "little"
    if args.raw:
        dis(data, byteorder=byteorder, hex=args.hex)
    else:
        sys.stdout.write(format_program(disassemble(data, byteorder), labels=args.labels, hex=args.hex))
    return 0
