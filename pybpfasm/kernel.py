"""Facts about the running kernel: release, tracefs, and address symbolisation.

* :func:`release` / :func:`version`: ``uname -r`` as text and as numbers;
* :func:`tracefs_root` / :func:`tracepoint_id`: tracefs found (or mounted) and read;
* :class:`Kallsyms`: kernel addresses -> ``sym+0x1a`` from ``/proc/kallsyms``;
* :class:`UserSymbols`: user addresses of a process -> ``sym+0x1a (file)`` through
  ``/proc/PID/maps`` and the ELF symbol tables of the mapped files.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import struct
from array import array
from typing import NamedTuple, Sequence

from .errors import BPFError
from .sys.abi import ffi, libc
from .sys.errors import SyscallError

TRACEFS_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


class KernelError(BPFError):
    """A kernel fact that cannot be read (tracefs, kallsyms, /proc)."""


def release() -> str:
    """The running kernel's release string (``uname -r``)."""
    return os.uname().release


def version() -> tuple[int, int, int]:
    """(major, minor, patch) of the running kernel."""
    parts = [int(p) for p in re.findall(r"\d+", release())[:3]]
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


# -- tracefs ----------------------------------------------------------------------


def _is_tracefs(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "events"))


@functools.cache
def tracefs_root() -> str:
    """Where tracefs is mounted; mounts it on /sys/kernel/tracing if it is nowhere."""
    for root in TRACEFS_MOUNTS:
        if _is_tracefs(root):
            return root
    root = TRACEFS_MOUNTS[0]
    if libc.mount(b"tracefs", root.encode(), b"tracefs", 0, ffi.NULL) != 0:
        raise SyscallError(f"mount tracefs on {root}", ffi.errno,
                           "the kernel needs CONFIG_TRACING and this process CAP_SYS_ADMIN")
    return root


def tracefs_path(*parts: str) -> str:
    """A path inside tracefs."""
    return os.path.join(tracefs_root(), *parts)


def tracepoint_id(category: str, event: str) -> int:
    """The perf event id of tracepoint ``category:event`` (its ``events/C/E/id``)."""
    path = tracefs_path("events", category, event, "id")
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        raise KernelError(f"no tracepoint {category}:{event} ({path} does not exist)") from None
    except OSError as err:
        raise KernelError(f"cannot read {path}: {err.strerror}") from None


# -- kernel symbols ---------------------------------------------------------------


class Kallsyms:
    """Kernel text symbols from ``/proc/kallsyms``, sorted for address lookups.

    Only what lookups need is kept: addresses in one array, names (with
    their ``[module]``) in one bytes object with an offset array beside it,
    read in chunks.  That is a quarter of the memory of the file, and a
    tenth of a list of (address, name) tuples, which matters at a tool's start.
    """

    _LINE = re.compile(rb"^([0-9a-f]+) [tTwW] ([^\n]+)\n", re.M)
    _CHUNK = 1 << 18

    def __init__(self, path: str = "/proc/kallsyms") -> None:
        addrs, offsets, names = array("Q"), array("I"), bytearray()
        try:
            with open(path, "rb") as f:
                rest = b""
                while True:
                    block = f.read(self._CHUNK)
                    data = rest + block
                    cut = data.rfind(b"\n") + 1 if block else len(data)
                    for m in self._LINE.finditer(data, 0, cut):
                        addrs.append(int(m.group(1), 16))
                        offsets.append(len(names))
                        names += m.group(2)
                    rest = data[cut:]
                    if not block:
                        break
        except OSError as err:
            raise KernelError(f"cannot read {path}: {err.strerror}") from None
        if addrs and not any(addrs):
            raise KernelError(f"{path} shows no addresses: run as root or set kernel.kptr_restrict=0")
        run = next((i + 1 for i in range(len(addrs) - 1) if addrs[i] > addrs[i + 1]), len(addrs))
        if run < len(addrs):  # module and BPF symbols follow the kernel's, in their own order
            offsets.append(len(names))
            lowest = min(addrs[i] for i in range(run, len(addrs)))
            run = bisect.bisect_right(addrs, lowest, 0, run)  # the sorted part below the rest
            tail = sorted(range(run, len(addrs)), key=addrs.__getitem__)
            moved = [(addrs[i], bytes(names[offsets[i]:offsets[i + 1]])) for i in tail]
            cut = offsets[run]
            del addrs[run:], offsets[run:], names[cut:]
            for addr, name in moved:
                addrs.append(addr)
                offsets.append(len(names))
                names += name
        offsets.append(len(names))
        self._addrs, self._offsets, self._names = addrs, offsets, bytes(names)

    @classmethod
    @functools.cache
    def load(cls) -> Kallsyms:
        """The kernel's symbols, read once per process."""
        return cls()

    def _entry(self, i: int) -> tuple[str, str]:
        """(name, module) of entry *i*."""
        text = self._names[self._offsets[i]:self._offsets[i + 1]].decode()
        name, _, module = text.partition("\t")
        return name, module

    def address(self, name: str) -> int:
        """Address of function ``name``."""
        key = name.encode()
        for i in range(len(self._addrs)):
            start = self._offsets[i]
            if self._names.startswith(key, start) and (
                    start + len(key) == self._offsets[i + 1] or self._names[start + len(key)] == 9):
                return self._addrs[i]
        raise KernelError(f"no kernel function {name!r} in kallsyms")

    def __contains__(self, name: str) -> bool:
        try:
            self.address(name)
        except KernelError:
            return False
        return True

    def symbolize(self, addr: int) -> str:
        """``name+0x1a`` (``name+0x1a [module]`` in a module), or the hex address if unknown."""
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return f"{addr:#x}"
        name, module = self._entry(i)
        return f"{name}+{addr - self._addrs[i]:#x}" + (f" {module}" if module else "")


# -- user symbols -----------------------------------------------------------------


class Mapping(NamedTuple):
    """One file-backed, executable line of ``/proc/PID/maps``."""

    start: int
    end: int
    offset: int
    path: str


def executable_mappings(pid: int) -> list[Mapping]:
    """The executable file mappings of process ``pid``, by start address."""
    out = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and "x" in fields[1] and fields[5].startswith("/"):
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    out.append(Mapping(start, end, int(fields[2], 16), fields[5].rstrip("\n")))
    except OSError as err:
        raise KernelError(f"cannot read the maps of process {pid}: {err.strerror}") from None
    return sorted(out)


#: per ELF class: address format, e_phoff/e_shoff/e_phentsize positions, and the fields we read
#: of a program header (type offset vaddr filesz), section header (name type offset size link
#: entsize) and symbol (in file order)
_ELF = {
    1: ("I", 0x1C, 0x20, 0x2A, "I I I 4x I 12x", "I I 8x I I I 8x I", "I I I B B H"),
    2: ("Q", 0x20, 0x28, 0x36, "I 4x Q Q 8x Q 16x", "I I 16x Q Q I 12x Q", "I B B H Q Q"),
}
_PT_LOAD, _SHT_SYMTAB, _SHT_DYNSYM, _STT_FUNC = 1, 2, 11, 2


class ElfSymbols:
    """Function symbols of one ELF file (``.symtab`` and ``.dynsym``) and its load segments."""

    def __init__(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as err:
            raise KernelError(f"cannot read {path}: {err.strerror}") from None
        if data[:4] != b"\x7fELF" or data[4] not in _ELF or data[5] not in (1, 2):
            raise KernelError(f"{path}: not an ELF file")
        addr, phoff_at, shoff_at, counts_at, phdr, shdr, sym = _ELF[data[4]]
        order = "<" if data[5] == 1 else ">"
        phoff, = struct.unpack_from(order + addr, data, phoff_at)
        shoff, = struct.unpack_from(order + addr, data, shoff_at)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", data, counts_at)
        #: (file offset, virtual address, size) of each PT_LOAD segment
        self.segments = []
        for i in range(phnum):
            p_type, p_offset, p_vaddr, p_filesz = struct.unpack_from(order + phdr, data,
                                                                     phoff + i * phentsize)
            if p_type == _PT_LOAD:
                self.segments.append((p_offset, p_vaddr, p_filesz))
        sections = [struct.unpack_from(order + shdr, data, shoff + i * shentsize)
                    for i in range(shnum if shoff else 0)]
        symbols: dict[int, tuple[int, str]] = {}
        sym_fmt = struct.Struct(order + sym)
        for _name, sh_type, sh_offset, sh_size, sh_link, sh_entsize in sections:
            if sh_type not in (_SHT_SYMTAB, _SHT_DYNSYM) or not sh_entsize:
                continue
            str_offset = sections[sh_link][2]
            for pos in range(sh_offset, sh_offset + sh_size, sh_entsize):
                st_name, st_value, st_size, st_info = _sym_fields(data[4],
                                                                  sym_fmt.unpack_from(data, pos))
                if st_info & 0xF == _STT_FUNC and st_value:
                    end = data.index(b"\0", str_offset + st_name)
                    name = data[str_offset + st_name:end].decode(errors="replace")
                    symbols.setdefault(st_value, (st_size, name))
        self._addrs = sorted(symbols)
        self._sizes = [symbols[a][0] for a in self._addrs]
        self._names = [symbols[a][1] for a in self._addrs]

    def vaddr(self, file_offset: int) -> int | None:
        """The link-time address of a file offset (None outside the load segments)."""
        for p_offset, p_vaddr, p_filesz in self.segments:
            if p_offset <= file_offset < p_offset + p_filesz:
                return file_offset - p_offset + p_vaddr
        return None

    def symbolize(self, vaddr: int) -> str | None:
        """``name+0x1a`` for a link-time address; None outside every sized function symbol."""
        i = bisect.bisect_right(self._addrs, vaddr) - 1
        if i < 0:
            return None
        offset = vaddr - self._addrs[i]
        if self._sizes[i] and offset >= self._sizes[i]:
            return None  # in a function the stripped file has no symbol for
        return f"{self._names[i]}+{offset:#x}"


def _sym_fields(elf_class: int, f: Sequence[int]) -> tuple[int, int, int, int]:
    """(name, value, size, info) of a symbol as unpacked in its class's field order."""
    # ELF32 sym: name, value, size, info, other, shndx; ELF64: name, info, other, shndx, value, size
    return (f[0], f[1], f[2], f[3]) if elf_class == 1 else (f[0], f[4], f[5], f[1])


class UserSymbols:
    """Symbolises user-space addresses of one process (its maps are read once)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._maps = executable_mappings(pid)
        self._starts = [m.start for m in self._maps]
        self._files: dict[str, ElfSymbols | None] = {}

    def _elf(self, path: str) -> ElfSymbols | None:
        if path not in self._files:
            try:
                self._files[path] = ElfSymbols(f"/proc/{self.pid}/root{path}")
            except KernelError:
                self._files[path] = None
        return self._files[path]

    def symbolize(self, addr: int) -> str:
        """``sym+0x1a (file)``, ``file+0xoffset`` without symbols, the hex address if unmapped."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0 or addr >= self._maps[i].end:
            return f"{addr:#x}"
        m = self._maps[i]
        file_offset = addr - m.start + m.offset
        name = os.path.basename(m.path)
        elf = self._elf(m.path)
        vaddr = elf.vaddr(file_offset) if elf else None
        sym = elf.symbolize(vaddr) if elf and vaddr is not None else None
        return f"{sym} ({name})" if sym else f"{name}+{file_offset:#x}"
