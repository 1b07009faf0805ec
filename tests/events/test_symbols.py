"""pybpfasm.kernel: tracefs ids, kallsyms and ELF symbolisation against independent sources."""

from __future__ import annotations

import ctypes
import os
import re

import pytest

from pybpfasm.kernel import (
    ElfSymbols,
    Kallsyms,
    KernelError,
    UserSymbols,
    executable_mappings,
    tracefs_path,
    tracepoint_id,
    version,
)


def test_version_is_uname():
    assert ".".join(map(str, version()[:2])) in os.uname().release


def test_tracepoint_id_and_unknown_tracepoint():
    with open(tracefs_path("events", "skb", "kfree_skb", "id")) as f:
        assert tracepoint_id("skb", "kfree_skb") == int(f.read())
    with pytest.raises(KernelError, match="no tracepoint skb:nope"):
        tracepoint_id("skb", "nope")


def test_kallsyms_symbolises_offsets_into_functions():
    symbols = Kallsyms.load()
    name = "tcp_v4_rcv"  # long enough that +0x1a stays inside it
    with open("/proc/kallsyms") as f:  # an independent parse
        addr = next(line.split()[0] for line in f if line.split()[2] == name)
    base = symbols.address(name)
    assert base == int(addr, 16)
    assert symbols.symbolize(base + 0x1A) == f"{name}+0x1a"
    assert symbols.symbolize(1) == "0x1"
    with pytest.raises(KernelError):
        symbols.address("pybpfasm_no_such_symbol")


def test_user_symbols_of_libc_functions():
    libc = ctypes.CDLL(None)
    addr = ctypes.cast(libc.getppid, ctypes.c_void_p).value
    frame = UserSymbols(os.getpid()).symbolize(addr + 2)
    assert re.fullmatch(r"\w*getppid\+0x2 \(libc[\w.-]*\)", frame), frame


def test_elf_symbols_agree_with_the_dynamic_loader():
    libc_path = next(m.path for m in executable_mappings(os.getpid())
                     if os.path.basename(m.path).startswith("libc.so"))
    elf = ElfSymbols(libc_path)
    libc = ctypes.CDLL(libc_path)
    mapping = next(m for m in executable_mappings(os.getpid()) if m.path == libc_path)
    for name in ("getppid", "malloc", "qsort"):  # not IFUNCs: the loader gives the symbol itself
        addr = ctypes.cast(getattr(libc, name), ctypes.c_void_p).value
        vaddr = elf.vaddr(addr - mapping.start + mapping.offset)
        assert vaddr is not None
        assert elf.symbolize(vaddr).endswith("+0x0"), (name, elf.symbolize(vaddr))


def test_not_an_elf(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"not elf")
    with pytest.raises(KernelError, match="not an ELF"):
        ElfSymbols(str(path))


def test_address_in_an_unnamed_function_falls_back_to_file_offset():
    libc = ctypes.CDLL(None)
    # strlen is an IFUNC: the loader picks an implementation stripped libcs keep no symbol for
    addr = ctypes.cast(libc.strlen, ctypes.c_void_p).value
    frame = UserSymbols(os.getpid()).symbolize(addr)
    assert re.fullmatch(r"(\w*strlen\w*\+0x0 \(libc[\w.-]*\)|libc[\w.-]*\+0x[0-9a-f]+)", frame), frame
    assert UserSymbols(os.getpid()).symbolize(0x10) == "0x10"
