"""pybpfasm.kernel: tracefs ids, kallsyms and ELF symbolisation against independent sources."""

from __future__ import annotations

import bisect
import ctypes
import os
import random
import re
import zlib

import pytest

from pybpfasm import kernel
from pybpfasm.isa import R0, Mov, exit_
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
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import ProgType

TEXT = ("t", "T", "w", "W")


def _reference() -> tuple[list[int], list[str], dict[str, int]]:
    """An independent parse of /proc/kallsyms: text symbols sorted by address, first address by name."""
    entries, first = [], {}
    with open("/proc/kallsyms") as f:
        for line in f:
            addr, kind, name = line.rstrip("\n").split(" ", 2)
            if kind in TEXT:
                entries.append((int(addr, 16), name))
                first.setdefault(name.partition("\t")[0], int(addr, 16))
    entries.sort(key=lambda e: e[0])  # stable: equal addresses keep file order
    return [a for a, _ in entries], [n for _, n in entries], first


def _expected(addrs: list[int], names: list[str], addr: int) -> str:
    i = bisect.bisect_right(addrs, addr) - 1
    if i < 0:
        return f"{addr:#x}"
    name, _, module = names[i].partition("\t")
    return f"{name}+{addr - addrs[i]:#x}" + (f" {module}" if module else "")


@pytest.fixture()
def reads(monkeypatch) -> list[str]:
    """The paths Kallsyms reads in full (the live file), as it opens them."""
    seen: list[str] = []
    real = kernel._open_whole

    def spy(path: str):
        seen.append(path)
        return real(path)

    monkeypatch.setattr(kernel, "_open_whole", spy)
    return seen


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


@pytest.mark.parametrize("cached", [False, True])
def test_kallsyms_agrees_with_an_independent_parse(tmp_path, cached):
    cache = str(tmp_path / "kallsyms") if cached else None
    if cached:
        Kallsyms(cache=cache)  # primes it
    symbols = Kallsyms(cache=cache)
    addrs, names, first = _reference()
    # the kernel image's symbols: BPF programs that other processes load and unload
    # between the two reads would make the rest differ (they have their own test below)
    image = [a for a, n in zip(addrs, names) if "\t" not in n]
    rnd = random.Random(7)
    probes = [a + d for a in rnd.sample(image, 2000) for d in (-1, 0, 1, 0x40)]
    probes += [0, 1, image[0] - 1]
    probes += [a + d for a in symbols._image.addrs for d in (-1, 0, 1)]  # around block boundaries
    assert [symbols.symbolize(a) for a in probes] == [_expected(addrs, names, a) for a in probes]
    sample = rnd.sample(sorted({n for n in names if "\t" not in n} & first.keys()), 200)
    assert [symbols.address(n) for n in sample] == [first[n] for n in sample]


FAKE = (  # a KALLSYMS_ALL kernel's shape: per-CPU symbols at 0 first, data among the text
    "0000000000000000 A fixed_percpu_data\n"
    "0000000000001000 A cpu_debug_store\n"
    "ffffffff81000000 T _stext\n"
    "ffffffff81000010 t foo\n"
    "ffffffff81000020 D some_data\n"
    "ffffffff81000030 T bar\n"
    "ffffffffc0001000 t bpf_prog_abc_x\t[bpf]\n"
    "ffffffffc0000000 t mod_fn\t[mymod]\n"
)


@pytest.mark.parametrize("cached", [False, True])
def test_kallsyms_of_a_kernel_with_per_cpu_symbols_at_zero(tmp_path, cached):
    path = tmp_path / "kallsyms"
    path.write_text(FAKE)
    cache = str(tmp_path / "cache" / "kallsyms") if cached else None
    for _ in range(2 if cached else 1):  # fills the cache, then uses it
        symbols = Kallsyms(str(path), cache=cache)
        assert symbols.symbolize(0xFFFFFFFF81000015) == "foo+0x5"
        assert symbols.symbolize(0xFFFFFFFF81000025) == "foo+0x15"  # data is not code
        assert symbols.symbolize(0xFFFFFFFF81000031) == "bar+0x1"
        assert symbols.symbolize(0xFFFFFFFFC0000004) == "mod_fn+0x4 [mymod]"
        assert symbols.symbolize(0xFFFFFFFFC0001008) == "bpf_prog_abc_x+0x8 [bpf]"
        assert symbols.symbolize(0x500) == "0x500"
        assert symbols.address("bar") == 0xFFFFFFFF81000030
        assert "mod_fn" in symbols and "some_data" not in symbols


def test_kallsyms_with_every_address_hidden(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text("".join(f"{0:016x} {line[17:]}" for line in FAKE.splitlines(True)))
    for cache in (None, str(tmp_path / "cache" / "kallsyms")):
        with pytest.raises(KernelError, match="shows no addresses"):
            Kallsyms(str(path), cache=cache)
    assert not (tmp_path / "cache" / "kallsyms").exists()


def test_kallsyms_cache_missing_then_used(tmp_path, reads):
    cache = tmp_path / "sub" / "kallsyms"
    Kallsyms(cache=str(cache))
    assert reads == ["/proc/kallsyms"] and cache.exists()
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    assert oct(cache.parent.stat().st_mode & 0o777) == "0o700"
    symbols = Kallsyms(cache=str(cache))
    assert reads == ["/proc/kallsyms"]  # the second one read no live file
    assert symbols.symbolize(symbols.address("tcp_v4_rcv") + 2) == "tcp_v4_rcv+0x2"
    assert [p.name for p in cache.parent.iterdir()] == ["kallsyms"]  # no temporary left


def _corrupt_middle(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _resealed(path, first: bytes) -> None:
    """Replaces the start of the cached lines and writes a trailer that matches the result."""
    data = path.read_bytes()
    end = data.rindex(b"\n", 0, len(data) - 1) + 1
    lines = first + data[len(first):end]
    magic, boot, _crc, _size = data[end:].rsplit(b" ", 3)
    path.write_bytes(lines + b"%s %s %08x %d\n" % (magic, boot, zlib.crc32(lines), len(lines)))


def _other_boot(tmp_path, monkeypatch) -> None:
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("00000000-0000-0000-0000-000000000000\n")
    monkeypatch.setattr(kernel, "BOOT_ID", str(boot_id))


@pytest.mark.parametrize("damage", [
    _corrupt_middle,
    lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3]),  # truncated
    lambda p: p.write_bytes(b""),
    lambda p: p.write_bytes(b"garbage\n" * 10),
    lambda p: _resealed(p, b"0" * 16),  # a consistent file whose addresses are not this kernel's
])
def test_kallsyms_corrupt_cache_is_ignored_and_rewritten(tmp_path, reads, damage):
    cache = tmp_path / "kallsyms"
    Kallsyms(cache=str(cache))
    good = cache.read_bytes()
    damage(cache)
    symbols = Kallsyms(cache=str(cache))
    assert len(reads) == 2
    assert cache.read_bytes() == good
    assert symbols.symbolize(symbols.address("tcp_v4_rcv")) == "tcp_v4_rcv+0x0"


def test_kallsyms_cache_of_another_boot_is_stale(tmp_path, reads, monkeypatch):
    cache = tmp_path / "kallsyms"
    Kallsyms(cache=str(cache))
    _other_boot(tmp_path, monkeypatch)
    Kallsyms(cache=str(cache))
    assert len(reads) == 2
    assert b" 00000000-0000-0000-0000-000000000000 " in cache.read_bytes()[-120:]
    Kallsyms(cache=str(cache))
    assert len(reads) == 2


def test_kallsyms_cache_that_cannot_be_written_is_only_slower(tmp_path, reads):
    blocker = tmp_path / "file"
    blocker.write_text("")
    symbols = Kallsyms(cache=str(blocker / "kallsyms"))  # its directory cannot be made
    assert symbols.address("tcp_v4_rcv")


@pytest.mark.parametrize("plant", ["symlink", "group-writable", "someone else's",
                                   "in someone else's directory"])
def test_kallsyms_cache_only_in_a_directory_of_its_own(tmp_path, reads, plant):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    base = tmp_path / "base"
    base.mkdir(mode=0o755)
    directory = base / "pybpfasm"
    if plant == "symlink":
        directory.symlink_to(elsewhere)
    else:
        directory.mkdir(mode=0o700)
        if plant == "group-writable":
            directory.chmod(0o770)
        elif plant == "someone else's":
            os.chown(directory, 65534, 65534)
        else:
            os.chown(base, 65534, 65534)
    Kallsyms(cache=str(directory / "kallsyms"))
    Kallsyms(cache=str(directory / "kallsyms"))
    assert len(reads) == 2  # neither read nor written: both went to /proc/kallsyms
    assert list(elsewhere.iterdir()) == []
    if plant != "symlink":
        assert list(directory.iterdir()) == []


def test_kallsyms_cache_never_hides_bpf_programs_loaded_later(tmp_path):
    cache = str(tmp_path / "kallsyms")
    Kallsyms(cache=cache)
    spec = ProgramSpec(ProgType.SOCKET_FILTER, [Mov.imm(R0, 0), exit_()], name="pybpfasm_ks")
    with spec.load():
        with open("/proc/kallsyms") as f:
            line = next(ln for ln in f if ln.rstrip().endswith("_pybpfasm_ks\t[bpf]"))
        addr, _, name = line.split()[:3]
        symbols = Kallsyms(cache=cache)
        assert symbols.address(name) == int(addr, 16)
        assert symbols.symbolize(int(addr, 16) + 4) == f"{name}+0x4 [bpf]"


def test_kallsyms_load_uses_the_xdg_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kernel.cache_dir() == str(tmp_path / "pybpfasm")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert kernel.cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "pybpfasm")


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
