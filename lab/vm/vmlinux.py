"""Kernel images: the x86 bzImage setup header, its payload, and the ELF inside.

qemu boots an uncompressed ELF ``vmlinux`` directly through the PVH entry point
(an ELF note ``Xen``/``XEN_ELFNOTE_PHYS32_ENTRY``), which skips the in-guest
decompression that costs seconds under TCG.  The payload location comes from
the boot protocol fields ``payload_offset``/``payload_length`` (protocol 2.08+).
"""

from __future__ import annotations

import bz2
import lzma
import struct
import subprocess
import zlib
from pathlib import Path

from .errors import LabError
from .hosttools import require

ELF_MAGIC = b"\x7fELF"
HDRS_MAGIC = b"HdrS"
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


def bzimage_version(data: bytes) -> str:
    """The ``uname -r`` string recorded in a bzImage's setup header."""
    _check_bzimage(data)
    (pointer,) = struct.unpack_from("<H", data, 0x20E)
    text = data[0x200 + pointer : 0x200 + pointer + 256]
    return text.split(b"\0", 1)[0].split(b" ", 1)[0].decode("ascii", "replace")


def bzimage_payload(data: bytes) -> bytes:
    """The compressed kernel carried by a bzImage (boot protocol >= 2.08)."""
    _check_bzimage(data)
    setup_sects = data[0x1F1] or 4
    (protocol,) = struct.unpack_from("<H", data, 0x206)
    if protocol < 0x208:
        raise LabError(
            f"bzImage boot protocol {protocol >> 8}.{protocol & 0xFF} has no payload fields"
        )
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return data[start : start + length]


def _check_bzimage(data: bytes) -> None:
    if data[0x202:0x206] != HDRS_MAGIC:
        raise LabError("not an x86 bzImage (no 'HdrS' setup header)")


def decompress(payload: bytes) -> bytes:
    """Decompress a kernel payload by its magic; trailing bytes are ignored."""
    if payload.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
    if payload.startswith(b"\x1f\x8b"):
        return zlib.decompressobj(wbits=31).decompress(payload)
    if payload.startswith(b"\x5d\x00\x00"):
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(payload)
    if payload.startswith(b"BZh"):
        return bz2.BZ2Decompressor().decompress(payload)
    if payload.startswith(b"\x28\xb5\x2f\xfd"):
        # the kernel appends the uncompressed size (4 bytes) after the frame
        done = subprocess.run(
            [require("zstd"), "-d", "-c", "-q"],
            input=payload[:-4],
            capture_output=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise LabError(f"zstd could not unpack the kernel: {done.stderr.decode().strip()}")
        return done.stdout
    raise LabError(f"unknown kernel compression (payload starts {payload[:6].hex()})")


def has_pvh_entry(elf: bytes) -> bool:
    """True when a 64-bit ELF kernel has the PVH entry note qemu boots directly."""
    if not is_elf(elf) or elf[4] != 2:
        return False
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize
        )
        if p_type == PT_NOTE and _notes_have_pvh(elf[p_offset : p_offset + p_filesz]):
            return True
    return False


def _notes_have_pvh(notes: bytes) -> bool:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, n_type = struct.unpack_from("<III", notes, pos)
        name = notes[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
        if name == b"Xen" and n_type == XEN_ELFNOTE_PHYS32_ENTRY:
            return True
        pos += 12 + _align4(namesz) + _align4(descsz)
    return False


def _align4(n: int) -> int:
    return (n + 3) & ~3


def extract_vmlinux(image: Path, dest: Path) -> bool:
    """Write the ELF inside bzImage *image* to *dest* when it can boot through PVH.

    Returns False (and writes nothing) when the kernel has no PVH entry point.
    """
    elf = decompress(bzimage_payload(image.read_bytes()))
    if not is_elf(elf):
        raise LabError(f"{image}: the decompressed payload is not an ELF file")
    if not has_pvh_entry(elf):
        return False
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(elf)
    tmp.rename(dest)
    return True
