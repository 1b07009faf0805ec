"""Write a relocatable BPF object (what ``bpftool prog loadall`` and libbpf load) from assembler text.

The object has what clang's has: a section per program, named by its type
(``.section xdp``), subprograms in ``.text``, a ``.maps`` section of
BTF-defined maps (``.map counts, type=hash, key=4, value=8, max_entries=16``),
``license``, and relocations instead of resolved references: ``r1 = counts ll``
is an R_BPF_64_64 against the map's symbol and ``call twice`` an R_BPF_64_32
against the function's, so the loader links them.  Jumps are resolved here.
"""

from __future__ import annotations

from dataclasses import replace

from . import elf
from .asm import AssemblyError, assemble
from .isa import CALL, LD_IMM64, Instruction, PseudoCall, PseudoLoad, encode
from .objfile import (
    LICENSE_SECTION,
    MAPS_SECTION,
    SUBPROGRAM_SECTION,
    ObjectError,
    program_type,
)
from .text import AsmUnit, MapDirective

__all__ = ["write_object"]

#: fields of a BTF map definition, in the order libbpf's headers declare them
MAP_FIELDS = ("type", "key_size", "value_size", "max_entries", "map_flags")
_ALIASES = {"key": "key_size", "value": "value_size", "flags": "map_flags"}


def write_object(unit: AsmUnit, byteorder: str = "little", *, default_license: str = "GPL") -> bytes:
    """The ELF object for a parsed source file (see :func:`pybpfasm.text.parse_unit`)."""
    sections = _sections(unit)
    if not sections:
        raise ObjectError("the source has no instructions")
    maps = [_map_fields(m) for m in unit.maps]
    map_names = {m.name for m in unit.maps}
    functions = _functions(sections, unit.globals)
    elf_sections = [elf.Section(name, elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_EXECINSTR, b"", align=8)
                    for name in sections]
    local_syms, global_syms, map_syms = [], [], []
    for index, name in enumerate(sections, 1):
        for fname, start, size in functions[name]:
            entry = name != SUBPROGRAM_SECTION and start == 0  # a program: global, as libbpf wants
            bind = elf.STB_GLOBAL if fname in unit.globals or entry else elf.STB_LOCAL
            sym = elf.Symbol(fname, 8 * start, 8 * size, bind, elf.STT_FUNC, index)
            (global_syms if sym.bind == elf.STB_GLOBAL else local_syms).append(sym)
    maps_index = len(elf_sections) + 1
    map_size = 0
    for directive, fields in zip(unit.maps, maps):
        size = 8 * len(fields)
        map_syms.append(elf.Symbol(directive.name, map_size, size, elf.STB_GLOBAL, elf.STT_OBJECT, maps_index))
        map_size += size
    if maps:
        elf_sections.append(elf.Section(MAPS_SECTION, elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_WRITE,
                                        bytes(map_size), align=8))
    license_ = (unit.license if unit.license is not None else default_license).encode() + b"\0"
    elf_sections.append(elf.Section(LICENSE_SECTION, elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_WRITE,
                                    license_))
    license_sym = elf.Symbol("_license", 0, len(license_), elf.STB_GLOBAL, elf.STT_OBJECT,
                             len(elf_sections))
    elf_sections.append(elf.Section(".BTF", elf.SHT_PROGBITS, 0, _maps_btf(unit.maps, maps, byteorder),
                                    align=4))
    symbols = local_syms + global_syms + map_syms + [license_sym]
    number = {s.name: i for i, s in enumerate(symbols, 1)}
    relocations = {}
    for index, (name, insns) in enumerate(sections.items(), 1):
        code, relocs = _code(name, insns, number, map_names, byteorder)
        elf_sections[index - 1].data = code
        if relocs:
            relocations[index] = relocs
    return elf.write(elf_sections, symbols, relocations, byteorder)


def _sections(unit: AsmUnit) -> dict[str, list[Instruction]]:
    """Instructions by section, in order of first appearance (a section may be reopened)."""
    out: dict[str, list[Instruction]] = {}
    bounds = [start for _, start in unit.sections[1:]] + [len(unit.instructions)]
    for (name, start), end in zip(unit.sections, bounds):
        if start < end:
            if name != SUBPROGRAM_SECTION and program_type(name) is None:
                raise ObjectError(f"{_where(unit.instructions[start])}section {name!r} names no program "
                                  "type (xdp, socket, tc, tracepoint/..., raw_tp/..., kprobe/..., ...)")
            out.setdefault(name, []).extend(unit.instructions[start:end])
    return out


def _where(insn: Instruction) -> str:
    return f"{insn.source}: " if insn.source else ""


def _functions(sections: dict[str, list[Instruction]], globals_: frozenset[str]
               ) -> dict[str, list[tuple[str, int, int]]]:
    """Per section, its functions as (name, first slot, slots): the section's first label,
    ``.globl`` labels and every call target."""
    called = {i.reference for insns in sections.values() for i in insns
              if i.opcode == CALL and i.reference}
    out = {}
    for name, insns in sections.items():
        if insns[0].symbol is None:
            raise ObjectError(f"{_where(insns[0])}the code of section {name!r} needs a name: "
                              "a label before its first instruction")
        starts, pos = [], 0
        for k, insn in enumerate(insns):
            if insn.symbol and (k == 0 or insn.symbol in called or insn.symbol in globals_):
                starts.append((insn.symbol, pos))
            pos += insn.slots
        ends = [start for _, start in starts[1:]] + [pos]
        out[name] = [(fname, start, end - start) for (fname, start), end in zip(starts, ends)]
    return out


def _code(section: str, insns: list[Instruction], number: dict[str, int], map_names: set[str],
          byteorder: str) -> tuple[bytes, list[elf.Relocation]]:
    """The section's bytes (jumps resolved) and its relocations (map loads, calls)."""
    local = {i.symbol for i in insns if i.symbol}
    plain, relocs, pos = [], [], 0
    for insn in insns:
        ref = insn.reference
        if ref is not None and insn.opcode == CALL and insn.src == PseudoCall.CALL:
            if ref not in number:
                raise AssemblyError(f"{_where(insn)}call of {ref!r}, which is no function")
            relocs.append(elf.Relocation(8 * pos, number[ref], elf.R_BPF_64_32))
            insn = replace(insn, imm=-1, reference=None)
        elif ref is not None and insn.opcode == LD_IMM64:
            if ref not in map_names or insn.src != PseudoLoad.NONE:
                what = "a map defined with .map" if ref not in map_names else "a map (r1 = NAME ll)"
                raise AssemblyError(f"{_where(insn)}{ref!r} must be {what} in an object file")
            relocs.append(elf.Relocation(8 * pos, number[ref], elf.R_BPF_64_64))
            insn = replace(insn, imm=0, reference=None)
        elif ref is not None and ref not in local:
            raise AssemblyError(f"{_where(insn)}jump to {ref!r}, which is not in section {section!r}")
        plain.append(insn)
        pos += insn.slots
    return encode(assemble(plain), byteorder), relocs


def _map_fields(directive: MapDirective) -> dict[str, int]:
    """A ``.map`` directive's fields under libbpf's names; type names become numbers."""
    from .maps import MapType

    fields: dict[str, int] = {}
    for key, value in directive.fields.items():
        name = _ALIASES.get(key, key)
        if name not in MAP_FIELDS:
            raise ObjectError(f"{directive.source}: map {directive.name!r}: unknown field {key!r} "
                              f"(fields: type, key, value, max_entries, flags)")
        if isinstance(value, str):
            try:
                value = MapType[value.upper()]
            except KeyError:
                raise ObjectError(f"{directive.source}: unknown map type {value!r}") from None
        fields[name] = int(value)
    if "type" not in fields:
        raise ObjectError(f"{directive.source}: map {directive.name!r} needs a type")
    return {name: fields[name] for name in MAP_FIELDS if name in fields}


def _maps_btf(directives: list[MapDirective], maps: list[dict[str, int]], byteorder: str) -> bytes:
    """BTF describing the maps as libbpf's ``__uint(name, value)`` members: ``int (*name)[value]``."""
    from .btf.kinds import IntEncoding, Linkage
    from .btf.types import Array, Datasec, Int, Member, Ptr, Struct, Var, VarSecinfo
    from .btf.writer import BTFBuilder

    b = BTFBuilder(byteorder)
    int_id = b.add(Int("int", 4, 32, encoding=IntEncoding.SIGNED))
    index_id = b.add(Int("__ARRAY_SIZE_TYPE__", 4, 32))
    secinfo, offset = [], 0
    for directive, fields in zip(directives, maps):
        members = tuple(Member(name, b.add(Ptr(b.add(Array(int_id, index_id, value)))), 64 * k)
                        for k, (name, value) in enumerate(fields.items()))
        struct_id = b.add(Struct("", 8 * len(members), members))
        var_id = b.add(Var(directive.name, struct_id, Linkage.GLOBAL))
        secinfo.append(VarSecinfo(var_id, offset, 8 * len(members)))
        offset += 8 * len(members)
    if secinfo:
        b.add(Datasec(MAPS_SECTION, offset, tuple(secinfo)))
    return b.build().btf
