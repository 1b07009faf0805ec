"""BPF maps: a :class:`MapSpec` describes one, :meth:`MapSpec.create` makes a live :class:`Map`.

A live map reads like a dict (``m[k]``, ``m[k] = v``, ``del m[k]``, ``in``,
``items()``, ``clear()``). Keys and values go through a :class:`Codec`:
an ``int`` size gives integers for 1/2/4/8-byte fields and bytes otherwise,
a ``struct`` format string gives tuples, and any object with ``size``,
``encode`` and ``decode`` (the eDSL's record types, for instance) plugs in.
Per-CPU maps take and return one value per possible CPU, as a list.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import mmap as _mmap
import re
import struct
from typing import Any, Iterable, Iterator, Protocol, Union, runtime_checkable

from .errors import UsageError
from .sys import (
    FD,
    Cmd,
    FDOwner,
    MapFlag,
    Mapping,
    MapType,
    SyscallError,
    UpdateFlag,
    address,
    bpf,
    bpf_fd,
    ffi,
    new_attr,
    object_info,
    open_pinned,
    pin,
    raise_memlock,
)

#: the kernel-internal ENOTSUPP some map commands return
ENOTSUPP = 524


@runtime_checkable
class Codec(Protocol):
    """How a key or value type is laid out in a map: ``size`` bytes, both directions."""

    size: int

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Scalar:
    """``size`` raw bytes; integers (native byte order, unsigned) for 1, 2, 4 and 8 bytes.

    Objects with ``fileno()`` (maps, programs) encode as their descriptor, which
    is what program arrays and maps of maps expect.
    """

    size: int

    def encode(self, value: Any) -> bytes:
        if hasattr(value, "fileno"):
            value = value.fileno()
        if isinstance(value, int) and self.size in (1, 2, 4, 8):
            return value.to_bytes(self.size, _NATIVE, signed=value < 0)
        data = bytes(value)
        if len(data) != self.size:
            raise UsageError(f"expected {self.size} bytes, got {len(data)}")
        return data

    def decode(self, data: bytes) -> Any:
        if self.size in (1, 2, 4, 8):
            return int.from_bytes(data, _NATIVE)
        return bytes(data)


@dataclasses.dataclass(frozen=True)
class Packed:
    """A :mod:`struct` format: tuples in and out (a one-field format gives bare values)."""

    format: str

    @property
    def size(self) -> int:
        return struct.calcsize(self.format)

    def encode(self, value: Any) -> bytes:
        values = value if isinstance(value, tuple) else (value,)
        try:
            return struct.pack(self.format, *values)
        except struct.error as err:
            raise UsageError(f"cannot pack {value!r} as {self.format!r}: {err}") from None

    def decode(self, data: bytes) -> Any:
        values = struct.unpack(self.format, data)
        return values[0] if len(values) == 1 else values


CodecLike = Union[int, str, Codec]
_NATIVE = "little" if struct.pack("=H", 1) == b"\x01\x00" else "big"


def as_codec(spec: CodecLike) -> Codec:
    """A :class:`Codec` from a size, a :mod:`struct` format or a codec."""
    if isinstance(spec, bool):
        raise UsageError(f"not a key or value type: {spec!r}")
    if isinstance(spec, int):
        return Scalar(spec)
    if isinstance(spec, str):
        try:
            return Packed(spec)
        except struct.error as err:
            raise UsageError(f"bad struct format {spec!r}: {err}") from None
    if isinstance(spec, Codec):
        return spec
    raise UsageError(f"not a key or value type: {spec!r}")


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs: the length of every per-CPU value."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


PERCPU_TYPES = frozenset(
    {MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE}
)
ARRAY_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
KEYLESS_TYPES = frozenset({MapType.QUEUE, MapType.STACK, MapType.RINGBUF, MapType.BLOOM_FILTER})
MAP_OF_MAPS_TYPES = frozenset({MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS})

#: map type -> (key size, value size) where the kernel fixes them
_FIXED_SIZES = {
    MapType.PROG_ARRAY: (4, 4),
    MapType.PERF_EVENT_ARRAY: (4, 4),
    MapType.CGROUP_ARRAY: (4, 4),
    MapType.ARRAY_OF_MAPS: (4, 4),
    MapType.RINGBUF: (0, 0),
    MapType.USER_RINGBUF: (0, 0),
}

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.]")


@dataclasses.dataclass
class MapSpec:
    """Everything BPF_MAP_CREATE needs.

    ``key`` and ``value`` are codecs (or a size, or a struct format). For
    ``ringbuf`` ``max_entries`` is the buffer size in bytes; for
    ``perf_event_array`` 0 means one slot per possible CPU; maps of maps need
    ``inner``, a spec of the maps they will hold.
    """

    type: MapType
    key: CodecLike = 4
    value: CodecLike = 4
    max_entries: int = 1
    flags: int = 0
    name: str = ""
    inner: MapSpec | None = None
    map_extra: int = 0

    def __post_init__(self) -> None:
        self.type = MapType(self.type)
        if self.type in _FIXED_SIZES:
            key, value = _FIXED_SIZES[self.type]
            self.key = key if isinstance(self.key, int) else self.key
            self.value = value if isinstance(self.value, int) else self.value
        if self.type in KEYLESS_TYPES and self.key == 4:
            self.key = 0
        if self.type == MapType.PERF_EVENT_ARRAY and self.max_entries in (0, 1):
            self.max_entries = possible_cpus()
        if self.type == MapType.LPM_TRIE:
            self.flags |= MapFlag.NO_PREALLOC

    @property
    def key_codec(self) -> Codec:
        return as_codec(self.key)

    @property
    def value_codec(self) -> Codec:
        return as_codec(self.value)

    def create(self) -> Map:
        """Create the map in the kernel."""
        return Map(_create(self), self)


def _create(spec: MapSpec) -> FD:
    if spec.type in MAP_OF_MAPS_TYPES and spec.inner is None:
        raise UsageError(f"a {spec.type.name.lower()} map needs an inner map spec")
    raise_memlock()
    attr = new_attr()
    mc = attr.map_create
    mc.map_type = spec.type
    mc.key_size = spec.key_codec.size
    mc.value_size = spec.value_codec.size
    mc.max_entries = spec.max_entries
    mc.map_flags = spec.flags
    mc.map_extra = spec.map_extra
    name = _NAME_CHARS.sub("_", spec.name)[:15].encode()
    ffi.memmove(mc.map_name, name, len(name))
    inner = spec.inner.create() if spec.inner is not None else None
    try:
        if inner is not None:
            mc.inner_map_fd = inner.fileno()
        return bpf_fd(Cmd.MAP_CREATE, attr)
    except SyscallError as err:
        hint = _create_hint(spec) if err.errno == errno.EINVAL else err.hint
        raise SyscallError(f"create {_describe(spec)}", err.errno, hint) from None
    finally:
        if inner is not None:
            inner.close()


def _describe(spec: MapSpec) -> str:
    return f"{spec.type.name.lower()} map" + (f" {spec.name!r}" if spec.name else "")


def _create_hint(spec: MapSpec) -> str:
    """Advice for a create the kernel refused as invalid."""
    if spec.type == MapType.RINGBUF:
        return "a ring buffer's max_entries must be a power of two and a multiple of the page size"
    return (
        f"this kernel rejects the map: check that it supports {spec.type.name.lower()} maps "
        "(pybpfasm features), the flags, and the key/value sizes for this type"
    )


class Map(FDOwner):
    """A live map. Owns its file descriptor: ``close()`` or use it as a context manager."""

    def __init__(self, fd: FD, spec: MapSpec) -> None:
        self._fd = fd
        self.spec = spec
        self._key = spec.key_codec
        self._value = spec.value_codec
        self._percpu = spec.type in PERCPU_TYPES
        self._stride = (self._value.size + 7) & ~7
        self._ncpus = possible_cpus() if self._percpu else 1
        self._raw_value_size = self._stride * self._ncpus if self._percpu else self._value.size

    # -- opening ---------------------------------------------------------------

    @classmethod
    def open_pinned(cls, path: str, key: CodecLike | None = None, value: CodecLike | None = None) -> Map:
        """Open a map pinned in bpffs; key and value types default to byte sizes from the kernel."""
        return cls._from_fd(open_pinned(path), key, value)

    @classmethod
    def from_id(cls, map_id: int, key: CodecLike | None = None, value: CodecLike | None = None) -> Map:
        """Open a map by its kernel id (as returned by maps of maps)."""
        attr = new_attr()
        attr.by_id.map_id = map_id
        return cls._from_fd(bpf_fd(Cmd.MAP_GET_FD_BY_ID, attr), key, value)

    @classmethod
    def _from_fd(cls, fd: FD, key: CodecLike | None, value: CodecLike | None) -> Map:
        try:
            info = map_info(fd.fileno())
            spec = MapSpec(
                type=MapType(info.type),
                key=info.key_size if key is None else key,
                value=info.value_size if value is None else value,
                max_entries=info.max_entries,
                flags=info.map_flags,
                name=ffi.string(info.name).decode(),
            )
        except BaseException:
            fd.close()
            raise
        return cls(fd, spec)

    # -- ownership -------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<Map {_describe(self.spec)} fd={self._fd!r}>"

    # -- single elements -------------------------------------------------------

    def _encode_key(self, key: Any) -> Any:
        return ffi.from_buffer(self._key.encode(key)) if self._key.size else ffi.NULL

    def _encode_value(self, value: Any) -> bytes:
        if not self._percpu:
            return self._value.encode(value)
        values = list(value) if isinstance(value, list) else [value] * self._ncpus
        if len(values) != self._ncpus:
            raise UsageError(f"a per-CPU value needs {self._ncpus} entries, got {len(values)}")
        pad = bytes(self._stride - self._value.size)
        return b"".join(self._value.encode(v) + pad for v in values)

    def _decode_value(self, raw: bytes) -> Any:
        if not self._percpu:
            return self._value.decode(raw)
        return [
            self._value.decode(raw[i : i + self._value.size])
            for i in range(0, len(raw), self._stride)
        ]

    def _elem(self, cmd: Cmd, key: Any, value: Any = ffi.NULL, flags: int = 0) -> int:
        attr = new_attr()
        attr.elem.map_fd = self.fileno()
        attr.elem.key = address(key)
        attr.elem.value = address(value)
        attr.elem.flags = flags
        return bpf(cmd, attr)

    def lookup(self, key: Any = None, default: Any = None) -> Any:
        """The value at ``key``, or ``default`` if there is none."""
        out = ffi.new("char[]", self._raw_value_size)
        try:
            self._elem(Cmd.MAP_LOOKUP_ELEM, self._encode_key(key), out)
        except SyscallError as err:
            if err.errno == errno.ENOENT:
                return default
            raise
        return self._decode_value(ffi.buffer(out)[:])

    def update(self, key: Any, value: Any, flags: int = UpdateFlag.ANY) -> None:
        """Store ``value`` at ``key`` (``flags``: :class:`UpdateFlag`)."""
        data = ffi.from_buffer(self._encode_value(value))
        try:
            self._elem(Cmd.MAP_UPDATE_ELEM, self._encode_key(key), data, flags)
        except SyscallError as err:
            if err.errno == errno.E2BIG:
                raise SyscallError(
                    "update", err.errno, f"the map is full ({self.spec.max_entries} entries)"
                ) from None
            raise

    def delete(self, key: Any) -> bool:
        """Delete ``key``; returns whether it was there."""
        try:
            self._elem(Cmd.MAP_DELETE_ELEM, self._encode_key(key))
        except SyscallError as err:
            if err.errno == errno.ENOENT:
                return False
            raise
        return True

    def __getitem__(self, key: Any) -> Any:
        missing = object()
        value = self.lookup(key, missing)
        if value is missing:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        missing = object()
        return self.lookup(key, missing) is not missing

    # -- iteration -------------------------------------------------------------

    def keys(self) -> Iterator[Any]:
        """Every key, by BPF_MAP_GET_NEXT_KEY."""
        size = self._key.size
        cur, nxt = ffi.new("char[]", size), ffi.new("char[]", size)
        prev = ffi.NULL
        while True:
            try:
                self._elem(Cmd.MAP_GET_NEXT_KEY, prev, nxt)
            except SyscallError as err:
                if err.errno == errno.ENOENT:
                    return
                raise
            yield self._key.decode(ffi.buffer(nxt)[:])
            ffi.memmove(cur, nxt, size)
            prev = cur

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def items(self) -> list[tuple[Any, Any]]:
        """Every (key, value): one BPF_MAP_LOOKUP_BATCH pass where the kernel has it."""
        try:
            return self.lookup_batch()
        except _BatchUnsupported:
            pass
        missing = object()
        pairs = ((k, self.lookup(k, missing)) for k in list(self.keys()))
        return [(k, v) for k, v in pairs if v is not missing]

    def values(self) -> list[Any]:
        return [v for _, v in self.items()]

    def clear(self) -> None:
        """Remove every element (arrays, whose elements cannot be deleted, are zeroed)."""
        if self.spec.type in ARRAY_TYPES:
            zero = self._value.decode(bytes(self._value.size))
            self.update_batch((i, [zero] * self._ncpus if self._percpu else zero) for i in range(self.spec.max_entries))
        elif self.spec.type in (MapType.QUEUE, MapType.STACK):
            while self.pop() is not None:
                pass
        else:
            self.delete_batch(list(self.keys()))

    # -- batch operations ------------------------------------------------------

    def _batch(self, cmd: Cmd, keys: Any, values: Any, count: int, in_batch: Any = ffi.NULL,
               out_batch: Any = ffi.NULL, flags: int = 0) -> int:
        """One batch call; returns how many elements the kernel processed."""
        attr = new_attr()
        b = attr.batch
        b.map_fd = self.fileno()
        b.keys, b.values, b.count = address(keys), address(values), count
        b.in_batch, b.out_batch, b.elem_flags = address(in_batch), address(out_batch), flags
        try:
            bpf(cmd, attr)
        except SyscallError as err:
            if err.errno in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP) and not _batch_known(self.spec.type):
                raise _BatchUnsupported from None
            if err.errno != errno.ENOENT:
                raise
            _BATCH_WORKS[self.spec.type] = True
            raise _BatchDone(b.count) from None
        _BATCH_WORKS[self.spec.type] = True
        return int(b.count)

    def lookup_batch(self, chunk: int = 256) -> list[tuple[Any, Any]]:
        """Every (key, value) by BPF_MAP_LOOKUP_BATCH; raises ``_BatchUnsupported`` without it."""
        ksize, vsize = self._key.size, self._raw_value_size
        token_size = max(ksize, 4)
        in_tok, out_tok = ffi.new("char[]", token_size), ffi.new("char[]", token_size)
        prev: Any = ffi.NULL
        pairs: list[tuple[Any, Any]] = []
        chunk = max(1, min(chunk, self.spec.max_entries))
        while True:
            keys, values = ffi.new("char[]", ksize * chunk), ffi.new("char[]", vsize * chunk)
            done = False
            try:
                n = self._batch(Cmd.MAP_LOOKUP_BATCH, keys, values, chunk, prev, out_tok)
            except _BatchDone as end:
                n, done = end.count, True
            except SyscallError as err:
                if err.errno != errno.ENOSPC:  # a hash bucket holds more than `chunk`
                    raise
                chunk *= 2
                continue
            kbuf, vbuf = ffi.buffer(keys), ffi.buffer(values)
            pairs += [
                (self._key.decode(kbuf[i * ksize : (i + 1) * ksize]),
                 self._decode_value(vbuf[i * vsize : (i + 1) * vsize]))
                for i in range(n)
            ]
            if done:
                return pairs
            ffi.memmove(in_tok, out_tok, token_size)
            prev = in_tok

    def update_batch(self, items: Iterable[tuple[Any, Any]], flags: int = UpdateFlag.ANY) -> None:
        """Store many (key, value) pairs: one BPF_MAP_UPDATE_BATCH, or one update each."""
        pairs = list(items)
        if not pairs:
            return
        keys = ffi.from_buffer(b"".join(self._key.encode(k) for k, _ in pairs))
        values = ffi.from_buffer(b"".join(self._encode_value(v) for _, v in pairs))
        try:
            self._batch(Cmd.MAP_UPDATE_BATCH, keys, values, len(pairs), flags=flags)
        except _BatchUnsupported:
            for key, value in pairs:
                self.update(key, value, flags)

    def delete_batch(self, keys: Iterable[Any]) -> None:
        """Delete many keys: one BPF_MAP_DELETE_BATCH, or one delete each."""
        keys = list(keys)
        if not keys:
            return
        raw = ffi.from_buffer(b"".join(self._key.encode(k) for k in keys))
        try:
            self._batch(Cmd.MAP_DELETE_BATCH, raw, ffi.NULL, len(keys))
        except _BatchUnsupported:
            for key in keys:
                self.delete(key)
        except _BatchDone as end:
            raise KeyError(keys[end.count]) from None

    # -- queues, stacks --------------------------------------------------------

    def push(self, value: Any, flags: int = UpdateFlag.ANY) -> None:
        """Push onto a queue or stack (``UpdateFlag.EXIST`` overwrites the oldest when full)."""
        self._elem(Cmd.MAP_UPDATE_ELEM, ffi.NULL, ffi.from_buffer(self._encode_value(value)), flags)

    def pop(self) -> Any:
        """Remove and return the next value of a queue or stack, or ``None`` when empty."""
        out = ffi.new("char[]", self._raw_value_size)
        try:
            self._elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, ffi.NULL, out)
        except SyscallError as err:
            if err.errno == errno.ENOENT:
                return None
            raise
        return self._decode_value(ffi.buffer(out)[:])

    def peek(self) -> Any:
        """The next value of a queue or stack without removing it, or ``None``."""
        return self.lookup(None)

    # -- whole-map operations --------------------------------------------------

    def freeze(self) -> None:
        """Make the map read-only for user space (BPF programs may still write)."""
        attr = new_attr()
        attr.elem.map_fd = self.fileno()
        bpf(Cmd.MAP_FREEZE, attr)

    def pin(self, path: str) -> None:
        """Pin the map in bpffs (mounted on /sys/fs/bpf if missing)."""
        pin(self.fileno(), path)

    def mmap(self) -> Mapping:
        """Map an array created with ``MapFlag.MMAPABLE``: element ``i`` is at ``i * value_size``."""
        if self.spec.type != MapType.ARRAY or not self.spec.flags & MapFlag.MMAPABLE:
            raise UsageError("only array maps created with MapFlag.MMAPABLE can be mmapped")
        size = self._value.size * self.spec.max_entries
        size = (size + _mmap.PAGESIZE - 1) // _mmap.PAGESIZE * _mmap.PAGESIZE
        frozen = self.spec.flags & MapFlag.RDONLY_PROG
        return Mapping(self.fileno(), size, writable=not frozen)

    def info(self) -> Any:
        """The kernel's ``struct bpf_map_info`` for this map."""
        return map_info(self.fileno())


class _BatchUnsupported(Exception):
    """This kernel has no batch operations for the map type."""


class _BatchDone(Exception):
    """The batch call reached the end of the map after ``count`` elements (ENOENT)."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = int(count)


#: map types on which a batch call has succeeded: their EINVAL is a real error
_BATCH_WORKS: dict[MapType, bool] = {}


def _batch_known(kind: MapType) -> bool:
    return _BATCH_WORKS.get(kind, False)


def map_info(fd: int) -> Any:
    """``struct bpf_map_info`` of the map behind ``fd``."""
    return object_info(fd, "struct bpf_map_info")
