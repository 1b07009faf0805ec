"""Facts about the running kernel: release, tracefs, and address symbolisation.

* :func:`release` / :func:`version`: ``uname -r`` as text and as numbers;
* :func:`tracefs_root` / :func:`tracepoint_id`: tracefs found (or mounted) and read;
* :class:`Kallsyms`: kernel addresses -> ``sym+0x1a`` from ``/proc/kallsyms``;
* :class:`UserSymbols`: user addresses of a process -> ``sym+0x1a (file)`` through
  ``/proc/PID/maps`` and the ELF symbol tables of the mapped files.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import os
import re
import stat
import struct
import zlib
from array import array
from typing import BinaryIO, Callable, Iterator, NamedTuple, Sequence

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


def tracefs_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Where tracefs is mounted in this mount namespace (mountinfo is readable by anyone)."""
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields, _, rest = line.partition(" - ")
        if rest.split(" ", 1)[0] == "tracefs" and len(fields.split(" ")) > 4:
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                                 fields.split(" ")[4]))
    return points


@functools.cache
def tracefs_root() -> str:
    """Where tracefs is mounted; mounts it on /sys/kernel/tracing if it is nowhere.

    A tracefs that is mounted but closed to this user is said to be so, not
    taken for a missing one (tracefs is usually root's only, mode 0700).
    """
    mounted = tracefs_mounts()
    for root in [*(r for r in TRACEFS_MOUNTS if r in mounted), *mounted, *TRACEFS_MOUNTS]:
        try:
            os.stat(os.path.join(root, "events"))
            return root
        except PermissionError:
            where = f"is mounted on {root}" if root in mounted else f"may be under {root}"
            raise KernelError(f"tracefs {where} but this user (uid {os.geteuid()}) may not read "
                              "it: run as root") from None
        except OSError:
            continue
    root = TRACEFS_MOUNTS[0]
    if libc.mount(b"tracefs", root.encode(), b"tracefs", 0, ffi.NULL) != 0:
        raise SyscallError(f"tracefs is not mounted, and mounting it on {root} failed", ffi.errno,
                           "that needs root (CAP_SYS_ADMIN) and a kernel with CONFIG_TRACING")
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

BOOT_ID = "/proc/sys/kernel/random/boot_id"
_TEXT = frozenset(b"tTwW")
_CACHE_MAGIC = b"pybpfasm kallsyms 1"


def cache_dir() -> str:
    """``${XDG_CACHE_HOME:-~/.cache}/pybpfasm``: per-user caches, each always safe to delete."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybpfasm")


def _guarded(path: str, owners: set[int]) -> bool:
    """Whether *path* is a real directory (not a symlink) of one of *owners* that nobody
    else may write."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid in owners and not st.st_mode & 0o022


def private_dir(directory: str) -> bool:
    """Whether *directory* is this user's own and its parent this user's or root's, both
    real directories nobody else may write: what a cache must be before this process
    (root, say, under ``sudo -E`` with a user's HOME) reads or writes it."""
    return (_guarded(directory, {os.geteuid()})
            and _guarded(os.path.dirname(directory), {os.geteuid(), 0}))


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[BinaryIO]:
    """A new file that replaces *path* when the block ends without an error, so that
    readers see the old file or the whole new one; its directory is made if missing
    and must be :func:`private_dir`."""
    directory = os.path.dirname(path)
    base = os.path.dirname(directory)
    os.makedirs(base, mode=0o700, exist_ok=True)
    if _guarded(base, {os.geteuid(), 0}):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
    if not private_dir(directory):
        raise PermissionError(f"{directory} is not a directory of this user's own")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _open_whole(path: str) -> BinaryIO:
    """*path* opened to be read from start to end (a /proc file: its size unknown until read)."""
    return open(path, "rb", buffering=0)


def _read_all(path: str) -> bytearray:
    """The whole of a /proc file."""
    data = bytearray()
    try:
        with _open_whole(path) as f:
            while block := f.read(1 << 17):
                data += block
    except OSError as err:
        raise KernelError(f"cannot read {path}: {err.strerror}") from None
    return data


def _first_page(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError as err:
        raise KernelError(f"cannot read {path}: {err.strerror}") from None


def _file_crc(f: BinaryIO, end: int) -> int:
    """CRC-32 of the first *end* bytes of *f*, read in blocks."""
    crc, block = 0, bytearray(1 << 18)
    f.seek(0)
    with memoryview(block) as view:
        while end > 0:
            n = f.readinto(view[:min(end, len(block))])
            if not n:
                raise ValueError("file shorter than its trailer says")
            crc, end = zlib.crc32(view[:n], crc), end - n
    return crc


class _Dynamic(NamedTuple):
    """Text symbols after the kernel image's: in file order, and sorted by address."""

    addrs: array
    names: list[bytes]  # ``name`` or ``name\t[module]``
    sorted_addrs: array
    order: list[int]  # file index of each sorted entry


_BLOCK = 1 << 16
#: more than any kallsyms line (a name of up to 512 bytes, its address, type and [module])
_LINE_MAX = 1024


def _search(chunk: bytes, limit: int, width: int, addr: int) -> tuple[int, bytes] | None:
    """The last text line at or below *addr* among *chunk*'s lines that start before *limit*.

    The chunk's first line is at or below *addr* and its lines are sorted: a binary
    search over byte offsets, each probe reading the fixed-width hex address of the
    line that starts after it.
    """
    lo, hi = 0, limit  # lo: a line at or below addr; no line from hi on is
    while True:
        nl = chunk.find(b"\n", (lo + hi) // 2, hi)
        if nl < 0 or nl + 1 >= hi:
            nl = chunk.find(b"\n", lo, hi)
            if nl + 1 >= hi:
                break
        start = nl + 1
        if int(chunk[start:start + width], 16) <= addr:
            lo = start
        else:
            hi = start
    while chunk[lo + width + 1] not in _TEXT:  # data symbols: walk back to code
        if not lo:
            return None
        lo = chunk.rfind(b"\n", 0, lo - 1) + 1
    return int(chunk[lo:lo + width], 16), bytes(chunk[lo + width + 3:chunk.find(b"\n", lo)])


class _Image:
    """The kernel image's lines of kallsyms (sorted by address), read a block at a time.

    ``read(offset, size)`` gives those bytes: from memory after a live read, or
    with pread() from the cache file, which is never mapped (a mapping faults in
    64 KiB around each probe of a binary search: a stack or two would make most
    of the file resident).  The first address of each 64 KiB block narrows a
    lookup to one block: one read, then a binary search in it.
    """

    def __init__(self, read: Callable[[int, int], bytes], size: int) -> None:
        self.read, self.size = read, size
        head = read(0, 2 * _LINE_MAX)
        w = self.width = head.find(b" ")
        self.starts: list[int] = []  # the first line of each block
        self.addrs: list[int] = []
        for block in range(0, size, _BLOCK):
            window, at = head, 0
            if block:  # the window starts at the byte before the block
                window = read(block - 1, 2 * _LINE_MAX)
                at = window.find(b"\n") + 1
                if not at or block - 1 + at >= size:
                    break
            self.starts.append(block - 1 + at if block else 0)
            self.addrs.append(int(window[at:at + w], 16))
        tail = read(max(size - _LINE_MAX, 0), _LINE_MAX)
        last = tail.rfind(b"\n", 0, len(tail) - 1) + 1
        #: the lowest and highest address of the image
        self.lo, self.hi = (self.addrs[0], int(tail[last:last + w], 16)) if size else (1, 0)

    def at_or_below(self, addr: int) -> tuple[int, bytes] | None:
        """(address, name) of the last text symbol at or below *addr*."""
        j = bisect.bisect_right(self.addrs, addr) - 1
        while j >= 0:  # a block of data symbols only: the text before it
            start = self.starts[j]
            end = self.starts[j + 1] if j + 1 < len(self.starts) else self.size
            found = _search(self.read(start, end - start + _LINE_MAX), end - start, self.width, addr)
            if found:
                return found
            j -= 1
        return None

    def find(self, key: bytes) -> int | None:
        """The address of the first text symbol named *key*."""
        pattern, w, pos = b" " + key + b"\n", self.width, 0
        while pos < self.size:
            chunk = self.read(pos, 1 << 20)
            cut = len(chunk) if pos + len(chunk) >= self.size else chunk.rfind(b"\n") + 1
            at = chunk.find(pattern, 0, cut)
            while at >= 0:
                start = at - w - 2
                if chunk[at - 1] in _TEXT and (start == 0 or (start > 0 and chunk[start - 1] == 10)):
                    return int(chunk[start:start + w], 16)
                at = chunk.find(pattern, at + 1, cut)
            pos += cut
        return None


class Kallsyms:
    """Kernel text symbols from ``/proc/kallsyms``, for address and name lookups.

    The file is kept as read, not parsed: its first part, the kernel image's own
    symbols, is sorted by address (the kernel's lookups rely on it), so a lookup
    is a binary search over the lines' fixed-width hex addresses (:class:`_Image`).
    Symbols of modules, BPF programs and trampolines follow in their own order;
    they are parsed only when a lookup falls outside the kernel image, where that
    code lives.  Results are remembered (stacks repeat their frames).

    With *cache*, the kernel image's part is kept in that file for the rest of the
    boot: it is used while the file names this boot (``boot_id``), its checksum holds
    and its first page matches the live file (same addresses, same visibility);
    anything else is ignored and rewritten.  A cached image is read with pread()
    and never held in memory.  Module and BPF symbols come and go, so they are
    never cached: a lookup that needs them reads the live file.
    """

    def __init__(self, path: str = "/proc/kallsyms", cache: str | None = None) -> None:
        self._path = path
        self._tail: _Dynamic | None = None
        self._tail_text: bytes | bytearray | None = None
        image = self._read_cache(cache) if cache else None
        if image is None and cache:
            with contextlib.suppress(OSError):  # unwritable: read into memory instead
                image = self._fill_cache(cache)
        if image is None:
            data = self._read_live()
            image = _Image(lambda offset, size: data[offset:offset + size], len(data))
            self._check_addresses(image.hi if image.size else 1)
        self._image = image
        self._seen: dict[int, str] = {}

    @classmethod
    @functools.cache
    def load(cls) -> Kallsyms:
        """The kernel's symbols, read once per process, through the per-user cache."""
        return cls(cache=os.path.join(cache_dir(), "kallsyms"))

    # -- reading ------------------------------------------------------------------

    def _read_live(self) -> bytearray:
        """Reads the whole file: returns the kernel image's lines, keeps the rest for later."""
        data = _read_all(self._path)
        if data and not data.endswith(b"\n"):
            data += b"\n"
        tab = data.find(b"\t")  # the first line with a [module]
        cut = data.rfind(b"\n", 0, tab) + 1 if tab >= 0 else len(data)
        self._tail_text = data[cut:]
        del data[cut:]
        return data

    def _read_cache(self, cache: str) -> _Image | None:
        """The cached image lines, or None unless valid for now.

        The file is those lines and one trailer line: magic, boot id, CRC-32, length.
        """
        if not private_dir(os.path.dirname(cache)):
            return None
        try:
            with open(BOOT_ID, "rb") as f:
                boot_id = f.read().strip()
            f = open(cache, "rb")  # noqa: SIM115 - kept open for the image's reads
        except OSError:
            return None
        try:
            size = os.fstat(f.fileno()).st_size
            tail = os.pread(f.fileno(), 256, max(0, size - 256))
            end = size - len(tail) + tail.rfind(b"\n", 0, len(tail) - 1) + 1
            fields = tail[end - size:].split()
            if (len(fields) == 6 and b" ".join(fields[:3]) == _CACHE_MAGIC and fields[3] == boot_id
                    and fields[5] == b"%d" % end and fields[4] == b"%08x" % _file_crc(f, end)):
                page = _first_page(self._path)
                n = min(len(page), end)
                if n and page[:n] == os.pread(f.fileno(), n, 0):
                    return _Image(lambda offset, length: os.pread(
                        f.fileno(), max(0, min(length, end - offset)), offset), end)
        except (OSError, ValueError):  # ValueError: shorter than its trailer says
            pass
        f.close()
        return None

    def _check_addresses(self, highest: int) -> None:
        """Refuse a file whose addresses are hidden (they all read 0 then)."""
        if not highest:
            raise KernelError(f"{self._path} shows no addresses: run as root or set "
                              "kernel.kptr_restrict=0")

    def _fill_cache(self, cache: str) -> _Image:
        """Copies the live file's image lines into *cache* as they are read (never all in
        memory), keeps the rest for later, and returns the image read from the cache."""
        with open(BOOT_ID, "rb") as f:
            boot_id = f.read().strip()
        with atomic_file(cache) as out:
            crc = size = 0
            carry, last = b"", b"1"
            try:
                with _open_whole(self._path) as src:
                    while block := src.read(1 << 17):
                        data = carry + block
                        cut = data.rfind(b"\n") + 1  # whole lines only
                        tab = data.find(b"\t", 0, cut)  # the first line with a [module]
                        if tab >= 0:
                            cut = data.rfind(b"\n", 0, tab) + 1
                        if cut:
                            last = data[data.rfind(b"\n", 0, cut - 1) + 1:cut]
                        out.write(data[:cut])
                        crc, size, carry = zlib.crc32(data[:cut], crc), size + cut, data[cut:]
                        if tab >= 0:
                            carry += src.read()
                            break
                    else:  # no [module] line: a last line without its newline is the image's too
                        if carry:
                            out.write(carry + b"\n")
                            crc = zlib.crc32(carry + b"\n", crc)
                            size, last, carry = size + len(carry) + 1, carry, b""
            except OSError as err:
                raise KernelError(f"cannot read {self._path}: {err.strerror}") from None
            self._check_addresses(int(last.split(b" ", 1)[0] or b"0", 16))
            self._tail_text = carry + (b"\n" if carry and not carry.endswith(b"\n") else b"")
            out.write(b"%s %s %08x %d\n" % (_CACHE_MAGIC, boot_id, crc, size))
        f = open(cache, "rb")  # noqa: SIM115 - kept open for the image's reads
        return _Image(lambda offset, length: os.pread(
            f.fileno(), max(0, min(length, size - offset)), offset), size)

    def _dynamic(self) -> _Dynamic:
        """The symbols after the image's (modules, BPF, trampolines), parsed on first use."""
        if self._tail is None:
            if self._tail_text is None:
                self._read_live()
            addrs, names = array("Q"), []
            w = self._image.width
            for line in self._tail_text.split(b"\n"):  # type: ignore[union-attr]
                if len(line) > w + 3 and line[w + 1] in _TEXT:
                    addrs.append(int(line[:w], 16))
                    names.append(bytes(line[w + 3:]))
            order = sorted(range(len(addrs)), key=addrs.__getitem__)
            self._tail = _Dynamic(addrs, names, array("Q", (addrs[i] for i in order)), order)
            self._tail_text = None
        return self._tail

    # -- lookups ------------------------------------------------------------------

    def address(self, name: str) -> int:
        """Address of function ``name``."""
        key = name.encode()
        found = self._image.find(key)
        if found is not None:
            return found
        dynamic = self._dynamic()
        for i, entry in enumerate(dynamic.names):
            if entry.partition(b"\t")[0] == key:
                return dynamic.addrs[i]
        raise KernelError(f"no kernel function {name!r} in kallsyms")

    def __contains__(self, name: str) -> bool:
        try:
            self.address(name)
        except KernelError:
            return False
        return True

    def symbolize(self, addr: int) -> str:
        """``name+0x1a`` (``name+0x1a [module]`` in a module), or the hex address if unknown."""
        text = self._seen.get(addr)
        if text is None:
            if len(self._seen) >= 4096:  # stacks repeat their frames: remember the latest ones
                self._seen.clear()
            text = self._seen[addr] = self._symbolize(addr)
        return text

    def _symbolize(self, addr: int) -> str:
        image = self._image
        best = image.at_or_below(addr)
        if not image.lo <= addr <= image.hi:  # outside the image: modules, BPF, trampolines
            dynamic = self._dynamic()
            i = bisect.bisect_right(dynamic.sorted_addrs, addr) - 1
            if i >= 0 and (best is None or dynamic.sorted_addrs[i] >= best[0]):
                best = dynamic.sorted_addrs[i], dynamic.names[dynamic.order[i]]
        if best is None:
            return f"{addr:#x}"
        name, _, module = best[1].decode(errors="replace").partition("\t")
        return f"{name}+{addr - best[0]:#x}" + (f" {module}" if module else "")


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
