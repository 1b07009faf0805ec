"""ELF64 relocatable objects, read and written: sections, symbols, REL relocations.

Only what BPF objects use (``EM_BPF``, ``ET_REL``, SHT_REL without addends),
in either byte order.  Reading checks every offset and size against the file,
so a corrupt object gives one :class:`ELFError`, never an IndexError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable

from .errors import BPFError

__all__ = ["ELFError", "ELFFile", "Relocation", "Section", "Symbol", "read", "write"]

EM_BPF = 247
ET_REL = 1
# section types
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS, SHT_REL = 0, 1, 2, 3, 8, 9
# section flags
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
# symbol bindings and types
STB_LOCAL, STB_GLOBAL = 0, 1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
# BPF relocation types
R_BPF_64_64 = 1  # ld_imm64 of a map or global
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_32 = 10  # call of a function

_EHDR = "16sHHIQQQIHHHHHH"
_SHDR = "IIQQQQIIQQ"
_SYM = "IBBHQQ"
_REL = "QQ"


class ELFError(BPFError):
    """A file that is not a well-formed ELF64 object."""

    exit_code = 2


@dataclass
class Section:
    name: str
    type: int
    flags: int = 0
    data: bytes = b""
    link: int = 0
    info: int = 0
    align: int = 1
    entsize: int = 0
    #: the size of a NOBITS section (which has no data in the file)
    nobits_size: int = 0

    @property
    def size(self) -> int:
        return self.nobits_size if self.type == SHT_NOBITS else len(self.data)

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int = 0
    size: int = 0
    bind: int = STB_LOCAL
    type: int = STT_NOTYPE
    shndx: int = SHN_UNDEF


@dataclass(frozen=True)
class Relocation:
    offset: int
    symbol: int
    type: int


@dataclass
class ELFFile:
    byteorder: str
    machine: int
    sections: list[Section] = field(default_factory=list)  # index 0 is the null section
    symbols: list[Symbol] = field(default_factory=list)  # index 0 is the null symbol
    relocations: dict[int, list[Relocation]] = field(default_factory=dict)  # by target section

    def index(self, name: str) -> int | None:
        return next((i for i, s in enumerate(self.sections) if s.name == name), None)


def _fmt(byteorder: str, layout: str) -> struct.Struct:
    return struct.Struct(("<" if byteorder == "little" else ">") + layout)


def read(data: bytes, source: str) -> ELFFile:
    """Parse an ELF64 object; raises :class:`ELFError` naming *source* and the problem."""
    if data[:4] != b"\x7fELF":
        raise ELFError(f"{source}: not an ELF file")
    if len(data) < 64 or data[4] != 2 or data[5] not in (1, 2):
        raise ELFError(f"{source}: not a 64-bit ELF file of a known byte order")
    byteorder = "little" if data[5] == 1 else "big"
    try:
        return _read(data, source, byteorder)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise ELFError(f"{source}: corrupt ELF file ({exc})") from None


def _read(data: bytes, source: str, byteorder: str) -> ELFFile:
    ehdr = _fmt(byteorder, _EHDR).unpack_from(data, 0)
    machine, shoff, shentsize, shnum, shstrndx = ehdr[2], ehdr[6], ehdr[11], ehdr[12], ehdr[13]
    shdr = _fmt(byteorder, _SHDR)
    if shnum == 0 or shentsize < shdr.size or shoff + shnum * shentsize > len(data):
        raise ELFError(f"{source}: section headers lie outside the file")
    raw = [shdr.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    for h in raw:
        if h[1] != SHT_NOBITS and h[4] + h[5] > len(data):
            raise ELFError(f"{source}: a section runs past the end of the file")
    if shstrndx >= shnum:
        raise ELFError(f"{source}: no section name table")
    names = data[raw[shstrndx][4]: raw[shstrndx][4] + raw[shstrndx][5]]
    out = ELFFile(byteorder, machine)
    for h in raw:
        sh_name, sh_type, flags, _addr, off, size, link, info, align, entsize = h
        body = b"" if sh_type == SHT_NOBITS else bytes(data[off: off + size])
        out.sections.append(Section(_cstr(names, sh_name), sh_type, flags, body, link, info, align,
                                    entsize, size if sh_type == SHT_NOBITS else 0))
    symtab = next((s for s in out.sections if s.type == SHT_SYMTAB), None)
    if symtab is not None:
        if symtab.link >= len(out.sections):
            raise ELFError(f"{source}: the symbol table names no string table")
        strings = out.sections[symtab.link].data
        sym = _fmt(byteorder, _SYM)
        for pos in range(0, len(symtab.data) - sym.size + 1, sym.size):
            st_name, st_info, _other, shndx, value, size = sym.unpack_from(symtab.data, pos)
            out.symbols.append(Symbol(_cstr(strings, st_name), value, size, st_info >> 4, st_info & 0xF,
                                      shndx))
    rel = _fmt(byteorder, _REL)
    for sec in out.sections:
        if sec.type != SHT_REL:
            continue
        relocs = out.relocations.setdefault(sec.info, [])
        for pos in range(0, len(sec.data) - rel.size + 1, rel.size):
            offset, info = rel.unpack_from(sec.data, pos)
            if info >> 32 >= len(out.symbols):
                raise ELFError(f"{source}: section {sec.name} relocates by symbol {info >> 32}, "
                               f"beyond the {len(out.symbols)} symbols")
            relocs.append(Relocation(offset, info >> 32, info & 0xFFFF_FFFF))
    return out


def _cstr(table: bytes, offset: int) -> str:
    if not 0 <= offset < max(len(table), 1):
        raise ValueError(f"string offset {offset} outside its table")
    end = table.find(b"\0", offset)
    return table[offset: end if end >= 0 else len(table)].decode()


def write(sections: Iterable[Section], symbols: Iterable[Symbol],
          relocations: dict[int, list[Relocation]], byteorder: str = "little") -> bytes:
    """A relocatable BPF object of *sections* (numbered from 1 in order), *symbols*
    (locals first; numbered from 1) and REL *relocations* keyed by section number.

    The symbol and string tables, the ``.rel*`` sections and the section
    name table are added here.
    """
    sections, symbols = list(sections), list(symbols)
    binds = [s.bind for s in symbols]
    if binds != sorted(binds):
        raise ValueError("local symbols must come before global ones")
    strtab = _StringTable()
    sym = _fmt(byteorder, _SYM)
    symdata = bytes(sym.size) + b"".join(
        sym.pack(strtab.add(s.name), s.bind << 4 | s.type, 0, s.shndx, s.value, s.size) for s in symbols)
    symtab_index = len(sections) + 1 + len(relocations)
    all_sections = [Section("", SHT_NULL), *sections]
    rel = _fmt(byteorder, _REL)
    for target in sorted(relocations):
        body = b"".join(rel.pack(r.offset, r.symbol << 32 | r.type) for r in relocations[target])
        all_sections.append(Section(".rel" + all_sections[target].name, SHT_REL, 0, body,
                                    symtab_index, target, 8, rel.size))
    first_global = 1 + sum(1 for s in symbols if s.bind == STB_LOCAL)
    all_sections.append(Section(".symtab", SHT_SYMTAB, 0, symdata, symtab_index + 1, first_global, 8,
                                sym.size))
    all_sections.append(Section(".strtab", SHT_STRTAB, 0, strtab.data()))
    shstrtab = _StringTable()
    name_offsets = [shstrtab.add(s.name) for s in all_sections]
    name_offsets.append(shstrtab.add(".shstrtab"))
    all_sections.append(Section(".shstrtab", SHT_STRTAB, 0, shstrtab.data()))
    ehdr, shdr = _fmt(byteorder, _EHDR), _fmt(byteorder, _SHDR)
    out = bytearray(ehdr.size)
    offsets = []
    for sec in all_sections:
        align = max(sec.align, 1)
        out += bytes(-len(out) % align)
        offsets.append(len(out))
        out += sec.data
    out += bytes(-len(out) % 8)
    shoff = len(out)
    for sec, name, off in zip(all_sections, name_offsets, offsets):
        out += shdr.pack(name, sec.type, sec.flags, 0, off if sec.type != SHT_NULL else 0, sec.size,
                         sec.link, sec.info, sec.align if sec.type != SHT_NULL else 0, sec.entsize)
    ident = b"\x7fELF" + bytes([2, 1 if byteorder == "little" else 2, 1]) + bytes(9)
    out[:ehdr.size] = ehdr.pack(ident, ET_REL, EM_BPF, 1, 0, 0, shoff, 0, ehdr.size, 0, 0, shdr.size,
                                len(all_sections), len(all_sections) - 1)
    return bytes(out)


class _StringTable:
    def __init__(self) -> None:
        self._data = bytearray(b"\0")
        self._offsets: dict[str, int] = {"": 0}

    def add(self, text: str) -> int:
        if text not in self._offsets:
            self._offsets[text] = len(self._data)
            self._data += text.encode() + b"\0"
        return self._offsets[text]

    def data(self) -> bytes:
        return bytes(self._data)
