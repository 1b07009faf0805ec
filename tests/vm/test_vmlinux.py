"""bzImage payloads and the PVH note, on images built here byte by byte."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from pathlib import Path

import pytest

from pybpfasm.lab.vm import vmlinux
from pybpfasm.lab.vm.errors import LabError


def elf_with_notes(notes: list[tuple[bytes, int, bytes]]) -> bytes:
    """A minimal ELF64 with one PT_NOTE segment holding *notes* (name, type, desc)."""
    blob = b""
    for name, n_type, desc in notes:
        name += b"\0"
        blob += struct.pack("<III", len(name), len(desc), n_type)
        blob += name.ljust((len(name) + 3) & ~3, b"\0") + desc.ljust((len(desc) + 3) & ~3, b"\0")
    phoff, phentsize = 64, 56
    header = b"\x7fELF\x02\x01\x01".ljust(16, b"\0")
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, phoff, 0, 0, 64, phentsize, 1, 0, 0, 0)
    note_offset = phoff + phentsize
    phdr = struct.pack("<IIQQQQQQ", vmlinux.PT_NOTE, 4, note_offset, 0, 0, len(blob), len(blob), 4)
    return header + phdr + blob


def bzimage(payload: bytes, version: str = "6.9.0-test (builder@host) #1") -> bytes:
    """A bzImage: one setup sector plus header fields, then the payload in the protected-mode part."""
    setup_sects = 1
    image = bytearray((setup_sects + 1) * 512)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, 0x20F)
    text = version.encode() + b"\0"
    struct.pack_into("<H", image, 0x20E, 0x100)
    image[0x300 : 0x300 + len(text)] = text
    struct.pack_into("<II", image, 0x248, 16, len(payload))
    return bytes(image) + b"\0" * 16 + payload + b"trailing"


PVH = elf_with_notes(
    [(b"Linux", 1, b"x" * 6), (b"Xen", vmlinux.XEN_ELFNOTE_PHYS32_ENTRY, b"\0" * 4)]
)
NO_PVH = elf_with_notes([(b"Xen", 5, b"abc"), (b"GNU", 3, b"\1" * 20)])


def test_pvh_note_is_found_only_when_present() -> None:
    assert vmlinux.has_pvh_entry(PVH)
    assert not vmlinux.has_pvh_entry(NO_PVH)
    assert not vmlinux.has_pvh_entry(b"MZ" + PVH)


@pytest.mark.parametrize(
    "compress",
    [
        lambda d: (
            lzma.compress(d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
            + struct.pack("<I", len(d))
        ),
        lambda d: gzip.compress(d) + struct.pack("<I", len(d)),
        lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
        bz2.compress,
    ],
    ids=["xz", "gzip", "lzma", "bzip2"],
)
def test_payload_round_trips_through_each_compression(compress, tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz"
    image.write_bytes(bzimage(compress(PVH)))
    assert vmlinux.extract_vmlinux(image, tmp_path / "vmlinux")
    assert (tmp_path / "vmlinux").read_bytes() == PVH


def test_kernel_without_pvh_entry_is_not_extracted(tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz"
    image.write_bytes(bzimage(gzip.compress(NO_PVH)))
    assert not vmlinux.extract_vmlinux(image, tmp_path / "vmlinux")
    assert not (tmp_path / "vmlinux").exists()


def test_release_comes_from_the_setup_header() -> None:
    assert vmlinux.bzimage_version(bzimage(b"")) == "6.9.0-test"


def test_non_kernels_are_refused_with_a_reason() -> None:
    with pytest.raises(LabError, match="not an x86 bzImage"):
        vmlinux.bzimage_payload(b"\0" * 4096)
    with pytest.raises(LabError, match="unknown kernel compression"):
        vmlinux.decompress(b"\x00\x01\x02\x03\x04\x05")
