"""Find a section (``.BTF``) in an ELF file held in memory; 32/64-bit, either byte order."""

from __future__ import annotations

import struct

from .errors import BTFError

ELF_MAGIC = b"\x7fELF"

# (e_shoff, e_shentsize/e_shnum/e_shstrndx) formats and offsets, and the
# (sh_name, sh_offset, sh_size) layout of a section header, per ELF class
_LAYOUT = {
    1: ("I", 0x20, 0x2E, "II8xII"),
    2: ("Q", 0x28, 0x3A, "II16xQQ"),
}


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


def section(data: bytes, name: str, source: str) -> memoryview:
    """The contents of section ``name``; BTFError if the ELF is bad or has none."""
    try:
        off_fmt, off_pos, counts_pos, sh_fmt = _LAYOUT[data[4]]
        order = {1: "<", 2: ">"}[data[5]]
    except (KeyError, IndexError):
        raise BTFError(f"{source}: unsupported ELF class or byte order") from None
    try:
        (shoff,) = struct.unpack_from(order + off_fmt, data, off_pos)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, counts_pos)
        headers = [
            struct.unpack_from(order + sh_fmt, data, shoff + i * shentsize) for i in range(shnum)
        ]
        _, _, str_off, str_size = headers[shstrndx]
    except (struct.error, IndexError, OverflowError):
        raise BTFError(f"{source}: truncated or corrupt ELF section headers") from None
    names = data[str_off : str_off + str_size]
    wanted = name.encode() + b"\0"
    for sh_name, _, offset, size in headers:
        if names[sh_name : sh_name + len(wanted)] == wanted:
            if offset + size > len(data):
                raise BTFError(f"{source}: section {name} runs past the end of the file")
            return memoryview(data)[offset : offset + size]
    raise BTFError(f"{source}: no {name} section (was it built with -g / pahole -J?)")
