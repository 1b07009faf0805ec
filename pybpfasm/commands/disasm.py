"""``pybpfasm disasm``: disassemble raw bytecode or a BPF ELF object into LLVM-syntax text."""

from __future__ import annotations

import argparse
import sys

from ..objfile import BPFObject, read_object
from ..text import dis, disassemble, format_instruction, format_program, label_targets
from ._io import read_input


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bytecode", help="raw bytecode or an ELF object file ('-' for standard input)")
    parser.add_argument("--big-endian", action="store_true",
                        help="read big-endian bytecode (objects say their byte order themselves)")
    parser.add_argument("--labels", action="store_true",
                        help="name jump targets with labels instead of offsets")
    parser.add_argument("--raw", action="store_true",
                        help="listing with slot numbers and bytes, like objdump")
    parser.add_argument("--hex", action="store_true",
                        help="immediates and offsets in hex (llvm-objdump's default since LLVM 19)")


def run(args: argparse.Namespace) -> int:
    data, name = read_input(args.bytecode, binary=True)
    if data[:4] == b"\x7fELF":
        sys.stdout.write(object_listing(read_object(data, name), hex=args.hex, raw=args.raw,
                                        labels=args.labels))
        return 0
    byteorder = "big" if args.big_endian else "little"
    if args.raw:
        dis(data, byteorder=byteorder, hex=args.hex)
    else:
        sys.stdout.write(format_program(disassemble(data, byteorder), labels=args.labels, hex=args.hex))
    return 0


def object_listing(obj: BPFObject, *, hex: bool = False, raw: bool = False, labels: bool = False) -> str:
    """An object as assembler text: its maps, then each section's functions, relocations
    shown as the symbols they name (``r1 = counts ll``, ``call twice``); with *labels*,
    jump targets get labels unique across sections (``LBB<section>_<slot>``)."""
    from ..maps import MapType

    out = [f'// {obj.source}: BPF object, {obj.byteorder} endian, license "{_escape(obj.license)}"']
    if obj.maps:
        out += ["", ".section .maps"]
    for m in obj.maps:
        kind = MapType(m.type).name.lower() if m.type in MapType._value2member_map_ else m.type
        line = (f".map {m.name}, type={kind}, key={m.key_size}, value={m.value_size}, "
                f"max_entries={m.max_entries}" + (f", flags={m.flags}" if m.flags else ""))
        types = [f"{what} {t}" for what, t in (("key", m.key_type), ("value", m.value_type)) if t]
        out.append(line + (f"\t// {', '.join(types)}" if types else ""))
    for k, (section, insns) in enumerate(obj.sections.items()):
        out += ["", f".section {section}"]
        if labels:
            insns = label_targets(insns, f"LBB{k}_")
        if raw:
            out.append(_raw(insns, obj.byteorder, hex).rstrip("\n"))
            continue
        for insn in insns:
            if insn.symbol:
                fn = obj.functions.get(insn.symbol)
                if fn is not None and fn.is_global:
                    out.append(f".globl {insn.symbol}")
                out.append(f"{insn.symbol}:")
            out.append(f"\t{format_instruction(insn, hex=hex)}{_comment(obj, insn)}")
    out += ["", ".section license", "_license:", f'\t.asciz "{_escape(obj.license)}"']
    return "\n".join(out) + "\n"


def _comment(obj: BPFObject, insn) -> str:
    """The global variable an ld_imm64 of global data points at."""
    if insn.reference in obj.data:
        name = obj.variables.get((insn.reference, (insn.imm >> 32) & 0xFFFF_FFFF))
        if name:
            return f"\t// {name}"
    return ""


def _raw(insns, byteorder: str, hex: bool) -> str:
    import io

    buf = io.StringIO()
    dis(insns, file=buf, byteorder=byteorder, hex=hex)
    return buf.getvalue()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
