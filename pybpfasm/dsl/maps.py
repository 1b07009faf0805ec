"""Map declarations for eDSL programs: typed keys and values, both sides.

A declaration (``HashMap(u32, u64, 1024)``) is shared by every program that
uses it.  In a program it emits helper calls with the key and value laid out
on the stack; once loaded (:class:`~pybpfasm.dsl.program.Collection`) the
same declaration decodes what user space reads from the live map.

::

    counts = HashMap(Key, u64, max_entries=4096, name="counts")

    @xdp
    def prog(b, ctx):
        counts.increment(b, key)                 # lookup, atomic add or insert
        with counts.lookup(b, key) as v:         # null check generated
            b.return_(v)

    events = RingBuf(Drop, size=1 << 20)
    with events.reserve(b) as ev:                # submitted at the end of the block
        ev.pid = b.get_current_pid_tgid() >> 32
"""

from __future__ import annotations

import errno
import itertools
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Union

from ..maps import MapSpec
from ..sys import MapType
from .errors import DSLTypeError
from .record import Record
from .scalars import ArrayType, Scalar, u32, u64

if TYPE_CHECKING:  # pragma: no cover
    from .values import Operandish, Ref, Value

# Declaring a map, creating it and decoding its entries need no BTF: the code
# generation layer (.types, .values, .ir) is imported by the methods that emit code.

KeyType = Union[Scalar, ArrayType, "type[Record]"]
_ids = itertools.count()

#: why a record did not reach user space, by way out: the slot of each cause in its loss counter
RING_LOSSES = ("full", "reserve")
PERF_LOSSES = ("full", "busy")
#: bpf_ringbuf_query's flag for the bytes not yet consumed; a ring record's header size
BPF_RB_AVAIL_DATA = 0
RINGBUF_HDR_SZ = 8
#: bpf_ringbuf_output/submit flags
BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP = 1, 2


class _Codec:
    """A map codec for a scalar or array type (Records are codecs themselves)."""

    def __init__(self, ty: Scalar | ArrayType) -> None:
        self.ty, self.size = ty, ty.size

    def encode(self, value: Any) -> bytes:
        if isinstance(self.ty, Scalar):
            return self.ty.encode(self.ty.to_wire(value) if self.ty.big_endian else value)
        return bytes(value).ljust(self.size, b"\0")

    def decode(self, data: bytes) -> Any:
        if isinstance(self.ty, Scalar):
            v = self.ty.decode(data)
            return self.ty.to_wire(v) if self.ty.big_endian else v
        return bytes(data)


def codec(ty: KeyType) -> Any:
    return ty if isinstance(ty, type) else _Codec(ty)


class MapDecl:
    """A map used by programs: its spec, its place in programs, its live map."""

    type: MapType
    #: the declaration of each name (a cached program names its maps); names declared
    #: twice are ambiguous, and a cached program that uses one is rebuilt instead
    by_name: ClassVar[dict[str, MapDecl]] = {}
    ambiguous: ClassVar[set[str]] = set()

    def __init__(self, key: KeyType | None, value: KeyType | None, max_entries: int,
                 name: str = "", flags: int = 0) -> None:
        self.key, self.value, self.max_entries, self.flags = key, value, max_entries, flags
        self.ref = f"map{next(_ids)}"
        self.name = name or self.ref
        if self.name in MapDecl.by_name:
            MapDecl.ambiguous.add(self.name)
        MapDecl.by_name[self.name] = self

    def companions(self) -> tuple[MapDecl, ...]:
        """Maps that user space needs along with this one (e.g. a loss counter)."""
        return ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def spec(self) -> MapSpec:
        return MapSpec(self.type, key=codec(self.key) if self.key else 0,
                       value=codec(self.value) if self.value else 0,
                       max_entries=self.max_entries, flags=self.flags, name=self.name)

    # -- BPF side ---------------------------------------------------------------------
    def pointer(self, b) -> Value:
        return b.map_ref(self.ref, self)

    def _on_stack(self, b, ty: KeyType, value: Operandish | bytes, what: str) -> Value:
        """The address of *value* laid out as *ty* (a stack copy unless it already is memory)."""
        from .types import Space
        from .values import Ref

        if isinstance(value, Ref) and value.space in (Space.STACK, Space.MAP):
            return value.addr()
        slot = b.stack(ty, what)
        if isinstance(ty, (type, ArrayType)):
            if isinstance(value, Ref):
                b.copy(slot, value)
            else:
                raise DSLTypeError(f"a {ty!r} {what} must be memory (a Ref), e.g. a stack record")
        else:
            slot.store(value)
        return slot.addr()

    def lookup_ptr(self, b, key: Operandish) -> Value:
        """``bpf_map_lookup_elem``: a pointer to the value, or NULL."""
        from .types import PtrType, Space

        k = self._on_stack(b, self.key, key, "map key")
        return b.call("map_lookup_elem", self.pointer(b), k,
                      returns=PtrType(self.value, Space.MAP, nullable=True))

    @contextmanager
    def lookup(self, b, key: Operandish) -> Iterator[Ref]:
        """The body runs with the value when *key* is present."""
        ptr = self.lookup_ptr(b, key)
        with b.if_(ptr != 0):
            yield ptr.non_null().deref()

    def update(self, b, key: Operandish, value: Operandish, flags: int = 0) -> Value:
        k = self._on_stack(b, self.key, key, "map key")
        v = self._on_stack(b, self.value, value, "map value")
        return b.call("map_update_elem", self.pointer(b), k, v, flags)

    def delete(self, b, key: Operandish) -> Value:
        return b.call("map_delete_elem", self.pointer(b), self._on_stack(b, self.key, key, "map key"))

    def increment(self, b, key: Operandish, by: Operandish = 1) -> None:
        """Atomically add *by* to the value at *key*, inserting it when absent."""
        from .types import PtrType, Space

        if not isinstance(self.value, Scalar) or self.value.size not in (4, 8):
            raise DSLTypeError("increment() needs a u32 or u64 value")
        k = self._on_stack(b, self.key, key, "map key")
        ptr = b.call("map_lookup_elem", self.pointer(b), k,
                     returns=PtrType(self.value, Space.MAP, nullable=True))
        with b.if_(ptr != 0):
            atomic_add(b, ptr.non_null().deref(), by)
        if self.type in (MapType.ARRAY, MapType.PERCPU_ARRAY):
            return  # every index within max_entries exists
        with b.else_():
            v = self._on_stack(b, self.value, by, "map value")
            b.call("map_update_elem", self.pointer(b), k, v, 1)  # BPF_NOEXIST


def atomic_add(b, ref: Ref, by: Operandish) -> None:
    """``lock *(u64 *)ref += by``."""
    from ..isa import AtomicOp, Class, Mode, Size
    from .ir import Op

    size = Size.DW if ref.size == 8 else Size.W
    v = b.value(by)
    b.emit(Op(Class.STX | Mode.ATOMIC | size, ref.base, v.reg, ref.off, AtomicOp.ADD))


class HashMap(MapDecl):
    type = MapType.HASH


class LRUHashMap(MapDecl):
    type = MapType.LRU_HASH


class ArrayMap(MapDecl):
    type = MapType.ARRAY

    def __init__(self, value: KeyType, max_entries: int, name: str = "", flags: int = 0) -> None:
        super().__init__(u32, value, max_entries, name, flags)


class PerCPUArray(ArrayMap):
    type = MapType.PERCPU_ARRAY


class PerCPUHash(MapDecl):
    type = MapType.PERCPU_HASH


class StackTraceMap(MapDecl):
    """Stack ids from ``bpf_get_stackid``; values are ``depth`` return addresses."""

    type = MapType.STACK_TRACE

    def __init__(self, max_entries: int = 1024, depth: int = 127, name: str = "") -> None:
        super().__init__(u32, u64[depth], max_entries, name)
        self.depth = depth

    def stackid(self, b, ctx: Value, flags: int = 0) -> Value:
        """The id of the current stack (negative on failure); flags as bpf_get_stackid."""
        return b.call("get_stackid", ctx, self.pointer(b), flags, returns=Scalar(8, True))


class RingBuf(MapDecl):
    """A ring buffer of records, with an exact count of records that found no room.

    Every record that does not reach the ring is counted, per CPU, in the
    slot of its cause (:data:`RING_LOSSES`): ``full`` when the ring had no room
    (the reader was behind), ``reserve`` when the reservation failed with room
    left (since 6.16 the ring's lock is a resilient spinlock whose acquisition
    can fail: deadlock detection or a timeout, where the old lock spun).  The
    cause is told apart by asking the ring right after the failure
    (``bpf_ringbuf_query``), so a reader that frees room in that instant makes
    a ``full`` loss count as ``reserve``; the total is exact either way.
    """

    type = MapType.RINGBUF

    def __init__(self, record: type[Record], size: int = 1 << 20, name: str = "",
                 wakeup_bytes: int | None = None) -> None:
        if size & (size - 1) or size < 4096:
            raise DSLTypeError("a ring buffer's size is a power of two of at least 4096 bytes")
        super().__init__(None, None, size, name)
        self.record = record
        self.lost = PerCPUArray(u64, len(RING_LOSSES), name=f"{self.name[:10]}_lost")
        #: None: the kernel's wakeups (the reader is woken whenever it had caught up: an
        #: interrupt and a wakeup per record at moderate rates); else records are committed
        #: without a wakeup except the one that brings this many bytes waiting, and the
        #: reader also looks every so often (RingBuffer's ``max_wait``)
        self.wakeup_bytes = wakeup_bytes
        self._need = (record.size + RINGBUF_HDR_SZ + 7) & ~7

    def _wakeup(self, b, committed: bool) -> Any:
        """The flags of one commit: a forced wakeup for the record that crosses
        ``wakeup_bytes`` (*committed*: the bytes waiting already include it), else none."""
        if self.wakeup_bytes is None:
            return 0
        avail = b.call("ringbuf_query", self.pointer(b), BPF_RB_AVAIL_DATA)
        before = b.var(avail - self._need if committed else avail)
        flags = b.var(BPF_RB_NO_WAKEUP)
        with b.if_((before < self.wakeup_bytes) & (before + self._need >= self.wakeup_bytes)):
            flags.set(BPF_RB_FORCE_WAKEUP)
        return flags

    def companions(self) -> tuple[MapDecl, ...]:
        return (self.lost,)

    def count_loss(self, b) -> None:
        """Count one record that did not fit, in the slot of its cause."""
        need = (self.record.size + RINGBUF_HDR_SZ + 7) & ~7
        avail = b.call("ringbuf_query", self.pointer(b), BPF_RB_AVAIL_DATA)
        with b.if_(avail + need > self.max_entries - 1):  # the kernel's own test of room
            self.lost.increment(b, RING_LOSSES.index("full"))
        with b.else_():
            self.lost.increment(b, RING_LOSSES.index("reserve"))

    @contextmanager
    def reserve(self, b) -> Iterator[Ref]:
        """Reserve a record; the body fills it, and it is submitted at the end.

        If there is no room the body is skipped and the loss is counted.
        Call ``b.discard(ev)`` to drop a reservation instead.
        """
        from .types import PtrType, Space

        ptr = b.call("ringbuf_reserve", self.pointer(b), self.record.size, 0,
                     returns=PtrType(self.record, Space.MAP, nullable=True))
        with b.if_(ptr != 0):
            ev = ptr.non_null().deref()
            yield ev
            b.call("ringbuf_submit", ptr, self._wakeup(b, committed=True))
        with b.else_():
            self.count_loss(b)

    def output(self, b, record: Ref) -> None:
        """Copy *record* (e.g. built on the stack) into the buffer; count it lost if it does not fit."""
        _check_record(self.record, record)
        ret = b.call("ringbuf_output", self.pointer(b), record.addr(), self.record.size,
                     self._wakeup(b, committed=False), returns=Scalar(8, True))
        with b.if_(ret != 0):
            self.count_loss(b)


class PerfEventArray(MapDecl):
    """Per-CPU perf buffers of records: the way out before ring buffers (5.8).

    The kernel reports what did not fit as PERF_RECORD_LOST, but only when
    a later sample reaches the same CPU's ring; so every failed output is
    also counted here, per CPU, in the slot of its cause (:data:`PERF_LOSSES`):
    ``full`` (-ENOSPC: no room in this CPU's ring) or ``busy`` (any other
    error, e.g. -EBUSY when outputs nest too deep on one CPU).
    """

    type = MapType.PERF_EVENT_ARRAY
    #: BPF_F_CURRENT_CPU: write to this CPU's buffer
    CURRENT_CPU = 0xFFFF_FFFF

    def __init__(self, record: type[Record], name: str = "") -> None:
        super().__init__(u32, u32, 0, name)  # 0: one slot per possible CPU
        self.record = record
        self.lost = PerCPUArray(u64, len(PERF_LOSSES), name=f"{self.name[:9]}_plost")

    def companions(self) -> tuple[MapDecl, ...]:
        return (self.lost,)

    def output(self, b, ctx: Value, record: Ref) -> Value:
        """Copy *record* into this CPU's buffer (``bpf_perf_event_output``); count a failure."""
        _check_record(self.record, record)
        ret = b.call("perf_event_output", ctx, self.pointer(b), self.CURRENT_CPU, record.addr(),
                     self.record.size, returns=Scalar(8, True))
        with b.if_(ret == -errno.ENOSPC):
            self.lost.increment(b, PERF_LOSSES.index("full"))
        with b.if_((ret != 0) & (ret != -errno.ENOSPC)):
            self.lost.increment(b, PERF_LOSSES.index("busy"))
        return ret


def _check_record(expected: type[Record], record: object) -> None:
    from .values import Ref

    if not isinstance(record, Ref):
        raise DSLTypeError(f"output() takes a {expected.__name__} record in memory "
                         f"(e.g. b.stack({expected.__name__})), not {record!r}")


class Events:
    """One event stream, two ways out: a ring buffer where the kernel has one
    (5.8), else per-CPU perf buffers.  ``kind`` is ``"auto"`` (decided by a
    feature probe when a program is built), ``"ringbuf"`` or ``"perf"``.

    ::

        events = Events(Drop, 1 << 20, name="drops")

        with events.reserve(b, ctx) as ev:   # ring space first, so a full ring costs little
            ev.pid = ...
        events.output(b, ctx, ev)            # or copy a record built on the stack
        reader = events.reader(coll)         # RingBuffer or PerfBuffer, lost counter included
    """

    #: a ring buffer wakes its reader when an eighth of it is waiting; the reader also looks
    #: this often (seconds), so a trickle of events is printed at once and a flood costs
    #: one wakeup per eighth of a ring instead of one per record
    READER_WAIT = 0.05

    def __init__(self, record: type[Record], size: int = 1 << 20, name: str = "events",
                 kind: str = "auto", perf_pages: int = 64) -> None:
        self.record = record
        self.ring = RingBuf(record, size, name=name, wakeup_bytes=size // 8)
        self.perf = PerfEventArray(record, name=f"{name[:10]}_perf")
        self.perf_pages = perf_pages
        self.kind = kind

    def resolve(self) -> str:
        """``"ringbuf"`` or ``"perf"``: the way out programs built now use."""
        if self.kind not in ("auto", "ringbuf", "perf"):
            raise DSLTypeError(f"event stream kind {self.kind!r}: use auto, ringbuf or perf")
        if self.kind == "auto":
            from ..features import map_type

            self.kind = "ringbuf" if map_type(MapType.RINGBUF) else "perf"
        return self.kind

    @property
    def map(self) -> RingBuf | PerfEventArray:
        """The declaration in use (after :meth:`resolve`)."""
        return self.ring if self.resolve() == "ringbuf" else self.perf

    @contextmanager
    def reserve(self, b, ctx: Value) -> Iterator[Ref]:
        """A record to fill: ring space reserved first, or a stack record sent at the end."""
        if self.resolve() == "ringbuf":
            with self.ring.reserve(b) as ev:
                b.zero(ev)
                yield ev
            return
        ev = b.stack(self.record, f"a {self.record.__name__} record")
        b.zero(ev)
        yield ev
        self.perf.output(b, ctx, ev)

    def output(self, b, ctx: Value, record: Ref) -> None:
        """Copy *record* (built on the stack) out; a failure is counted lost."""
        if self.resolve() == "ringbuf":
            self.ring.output(b, record)
        else:
            self.perf.output(b, ctx, record)

    def reader(self, coll: Any, raw: bool = False) -> Any:
        """The reader of the loaded stream in *coll* (a Collection): records decoded, or
        their bytes (*raw*)."""
        from ..events import PerfBuffer, RingBuffer

        decl, record = self.map, None if raw else self.record
        if decl is self.ring:
            return RingBuffer(coll.map(decl), record, lost=coll.map(decl.lost), causes=RING_LOSSES,
                              max_wait=self.READER_WAIT)
        return PerfBuffer(coll.map(decl), record, pages=self.perf_pages, lost=coll.map(decl.lost),
                          causes=PERF_LOSSES)


__all__ = ["ArrayMap", "Events", "HashMap", "LRUHashMap", "MapDecl", "PerCPUArray", "PerCPUHash", "PerfEventArray",
           "RingBuf", "StackTraceMap", "atomic_add"]
