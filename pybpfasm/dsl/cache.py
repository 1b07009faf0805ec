"""A cache of built programs, so that a tool's next start skips BTF and the build.

An entry is what :class:`~.program.Collection` needs to load a program it
built before: the bytecode with its map references left as slots to patch,
the maps by declaration name (with their shapes, checked on reuse) and the
kernel enum names its records decode.  Entries are keyed by everything the
build depended on: the kernel's BTF (release, build and BTF size, or an
external BTF file's identity), the pybpfasm sources (version and every
module's size and mtime), the program and the options it was built with.

Files live under ``${XDG_CACHE_HOME:-~/.cache}/pybpfasm/programs``, one JSON
file per key, written atomically; anything unreadable or inconsistent is
ignored and rebuilt, so deleting the directory is always safe.  A directory
that is not this user's own (root under ``sudo -E`` with a user's HOME) is
neither read nor written.  Each entry holds its whole key, so a file name
(a 64-bit checksum of it) that two keys share is only a miss.  A program with
bpf-to-bpf functions (a bpf_loop callback...) keeps the program BTF it was
loaded with (its func_info and line_info), since the kernel wants it again.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import struct
import zlib
from typing import TYPE_CHECKING, Any, NamedTuple

from ..kernel import atomic_file, cache_dir, private_dir

if TYPE_CHECKING:  # pragma: no cover
    from ..btf.writer import ProgramBTF
    from ..isa import Instruction

FORMAT = 1
#: the imm field of a slot (host byte order)
_IMM = struct.Struct("=i")


def program_dir() -> str:
    """Where built programs are kept."""
    return os.path.join(cache_dir(), "programs")


def _digest(text: str) -> str:
    """A 64-bit checksum of *text*, as 16 hex digits (not a secret: a name)."""
    data = text.encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


@functools.cache
def source_identity() -> str:
    """The pybpfasm version and the size and mtime of every module it is built from."""
    from .. import __version__

    root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    parts = [__version__]
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in ("lab", "__pycache__"))
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                parts.append(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}")
    return _digest("\n".join(parts))


def kernel_identity(btf_path: str | None = None) -> str:
    """What the kernel types came from: this kernel's build and BTF, or an external file."""
    if btf_path is not None:
        st = os.stat(btf_path)
        return f"file:{os.path.realpath(btf_path)}:{st.st_size}:{st.st_mtime_ns}"
    u = os.uname()
    try:
        size = os.stat("/sys/kernel/btf/vmlinux").st_size
    except OSError:
        size = -1
    return f"kernel:{u.machine}:{u.release}:{u.version}:{size}"


class ProgramCache:
    """Built programs on disk, by key (see the module docstring)."""

    def __init__(self, directory: str | None = None, btf_path: str | None = None,
                 salt: Any = ()) -> None:
        self.directory = os.fspath(directory) if directory is not None else program_dir()
        self._kernel = kernel_identity(btf_path)
        #: whatever else the caller's builds depend on (e.g. the event stream kind)
        self.salt = salt

    def key(self, *parts: Any) -> str:
        """The key of a program built from *parts* (program identity and options)."""
        return "\0".join([str(FORMAT), self._kernel, source_identity(), repr(self.salt),
                          *map(repr, parts)])

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, f"{_digest(key)}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry saved under *key*, or None (missing, unreadable, another key's or format)."""
        if not private_dir(self.directory):
            return None
        try:
            with open(self._path(key), "rb") as f:
                entry = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
            return None
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Save *entry* atomically; a cache that cannot be written is skipped."""
        try:
            with atomic_file(self._path(key)) as f:
                f.write(json.dumps({**entry, "format": FORMAT, "key": key}).encode())
        except OSError:
            pass


def encode_code(code: bytes) -> str:
    return base64.b64encode(code).decode()


def decode_code(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def encode_btf(btf: ProgramBTF) -> dict[str, Any]:
    """Program BTF as JSON: its blobs in base64, the record sizes as numbers."""
    return {"btf": encode_code(btf.btf), "func_info": encode_code(btf.func_info),
            "line_info": encode_code(btf.line_info), "func_info_rec_size": btf.func_info_rec_size,
            "line_info_rec_size": btf.line_info_rec_size}


class StoredBTF(NamedTuple):
    """Program BTF read back from the cache: what the loader reads of a
    :class:`~pybpfasm.btf.writer.ProgramBTF`, without importing the BTF package (about
    150 ms without .pyc files, the whole of a warm start's gain)."""

    btf: bytes
    func_info: bytes
    line_info: bytes
    func_info_rec_size: int
    line_info_rec_size: int


def decode_btf(data: dict[str, Any]) -> StoredBTF:
    return StoredBTF(decode_code(data["btf"]), decode_code(data["func_info"]), decode_code(data["line_info"]),
                     int(data["func_info_rec_size"]), int(data["line_info_rec_size"]))


def map_slots(insns: list[Instruction]) -> list[tuple[int, int]]:
    """(slot, placeholder) of every map-fd ``ld_imm64`` in assembled *insns*."""
    from ..isa import PseudoLoad

    out, slot = [], 0
    for insn in insns:
        if insn.is_ld_imm64 and insn.src == PseudoLoad.MAP_FD:
            out.append((slot, insn.imm))
        slot += insn.slots
    return out


def patch_fds(code: bytes, slots: list[tuple[int, int]], fds: list[int]) -> bytes:
    """*code* with each map slot's placeholder replaced by the fd of that map."""
    out = bytearray(code)
    for slot, index in slots:
        _IMM.pack_into(out, 8 * slot + 4, fds[index])
    return bytes(out)
