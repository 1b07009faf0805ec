"""Event streams from BPF programs: ring buffers, perf buffers and stack traces.

:class:`RingBuffer` reads a ``BPF_MAP_TYPE_RINGBUF`` (5.8) through its two
mappings: the consumer page (ours to write) and the producer page plus the
data area, which the kernel maps twice in a row so that a record that wraps
is still contiguous. Each record has an 8-byte header whose length word
carries a *busy* bit (reserved, not yet committed: reading stops there) and
a *discard* bit (skipped). The kernel counts no losses for ring buffers: a
program whose ``bpf_ringbuf_output``/``reserve`` fails counts it in a map,
which the reader reports as :attr:`RingBuffer.lost` (and by cause, one
counter slot each, as :attr:`RingBuffer.losses`).

:class:`PerfBuffer` reads a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY``: one perf ring
per CPU; the kernel reports samples it had to drop as ``PERF_RECORD_LOST``
records (with the next sample that fits), summed in :attr:`PerfBuffer.lost`.

The consumer position (and a perf ring's ``data_tail``) is shared with the
kernel, which reads it at any moment, so it is written with one 8-byte
store through a ``memoryview`` cast to ``Q``.  ``struct.pack_into`` will not
do: CPython zeroes the destination before it packs, and a kernel that reads
a consumer position of 0 finds the ring "full" (seen here as 1-5 events lost
per 100k at 10-20k events/s, with the ring nearly empty).

Records come back as ``bytes``, or decoded: pass ``record=`` a
:mod:`struct` format or :class:`struct.Struct` (tuples), or any object with
``decode(bytes)`` (the eDSL's record types).

:class:`StackTraces` turns ``bpf_get_stackid`` ids into addresses and
symbols (:mod:`pybpfasm.kernel`).
"""

from __future__ import annotations

import mmap
import select
import struct
from typing import Any, Callable, Iterable, List, Union

from .errors import UsageError
from .kernel import Kallsyms, UserSymbols
from .link.perf_event import PERF_EVENT_IOC_ENABLE, PERF_FLAG_FD_CLOEXEC, PERF_SAMPLE_RAW
from .maps import Map, possible_cpus
from .sys import Mapping, MapType, ffi, ioctl, perf_event_open

PAGE = mmap.PAGESIZE
#: bpf_ringbuf record header: length word bits, header size
RINGBUF_BUSY = 1 << 31
RINGBUF_DISCARD = 1 << 30
RINGBUF_HDR = 8

_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")

RecordType = Union[None, str, struct.Struct, Any]
Decoder = Callable[[Any, int, int], Any]


def decoder(record: RecordType) -> Decoder:
    """``(buffer, offset, length) -> record`` for a record type (see the module docstring)."""
    if record is None:
        return lambda buf, off, n: bytes(buf[off:off + n])
    if isinstance(record, str):
        record = struct.Struct(record)
    if isinstance(record, struct.Struct):
        unpack_from = record.unpack_from
        return lambda buf, off, n: unpack_from(buf, off)
    if hasattr(record, "decode"):
        decode = record.decode
        return lambda buf, off, n: decode(bytes(buf[off:off + n]))
    raise UsageError(f"not a record type: {record!r} (None, a struct format or a codec)")


Batch = Callable[[memoryview], list]


def batch_decoder(record: RecordType) -> tuple[int, Batch] | None:
    """``(size, decode)`` for a record type of fixed size: *decode* takes a view of whole ring
    records (header and padding included, one after another) and decodes them all with one
    :func:`struct.iter_unpack`; None for types without a fixed size (raw bytes)."""
    if isinstance(record, str):
        record = struct.Struct(record)
    if isinstance(record, struct.Struct):
        fmt, size, make = record.format, record.size, None
    elif hasattr(record, "struct_format") and hasattr(record, "from_tuple"):
        fmt, size, make = record.struct_format(), record.size, record.from_tuple
    else:
        return None
    if fmt[:1] in "@=<>!":
        order, fmt = fmt[0], fmt[1:]
    else:
        order = "@"
    pad = -(RINGBUF_HDR + size) % 8
    whole = struct.Struct(f"{'<' if order in '@=' else order}{RINGBUF_HDR}x{fmt}{pad}x")
    if whole.size != RINGBUF_HDR + size + pad:  # native alignment would move the fields
        return None
    iter_unpack = whole.iter_unpack
    if make is None:
        return size, lambda view: list(iter_unpack(view))
    return size, lambda view: [make(t) for t in iter_unpack(view)]


def _counts(counter: Map | None, causes: tuple[str, ...]) -> dict[str, int]:
    """A loss counter map's slots (each summed over CPUs), by cause."""
    if counter is None:
        return {}
    out = {}
    for slot, cause in enumerate(causes):
        value = counter[slot]
        out[cause] = sum(value) if isinstance(value, list) else int(value)
    return out


class _Polled:
    """An epoll set over descriptors that become readable when records arrive."""

    def __init__(self, fds: Iterable[int]) -> None:
        self._epoll = select.epoll()
        for fd in fds:
            self._epoll.register(fd, select.EPOLLIN)

    def wait(self, timeout: float | None) -> bool:
        """Block until a descriptor is readable or ``timeout`` seconds pass (None: forever)."""
        return bool(self._epoll.poll(-1 if timeout is None else timeout))

    def add(self, fd: int) -> None:
        self._epoll.register(fd, select.EPOLLIN)

    def close(self) -> None:
        self._epoll.close()


class RingBuffer:
    """Reader of a ring buffer map; ``lost`` is a counter map the program increments on failure,
    one slot per cause in ``causes`` (e.g. the eDSL's ``RING_LOSSES``)."""

    def __init__(self, ringbuf: Map, record: RecordType = None, lost: Map | None = None,
                 causes: tuple[str, ...] = ("lost",), max_wait: float | None = None) -> None:
        if ringbuf.spec.type != MapType.RINGBUF:
            raise UsageError(f"not a ring buffer map: {ringbuf!r}")
        self.map = ringbuf
        self.size = int(ringbuf.info().max_entries)
        self._mask = self.size - 1
        self._decode = decoder(record)
        self._batch = batch_decoder(record)
        self._lost, self._causes = lost, causes
        #: the longest :meth:`poll` waits for a wakeup before it looks anyway (for programs
        #: that commit records without one: BPF_RB_NO_WAKEUP); None: as long as asked
        self.max_wait = max_wait
        fd = ringbuf.fileno()
        self._consumer = Mapping(fd, PAGE, writable=True)
        try:
            self._producer = Mapping(fd, PAGE + 2 * self.size, writable=False, offset=PAGE)
        except BaseException:
            self._consumer.close()
            raise
        self._cons_view = memoryview(self._consumer.buffer)
        #: the consumer and producer positions as single 8-byte words (see the module docstring)
        self._cons = self._cons_view[:8].cast("Q")
        self._data = memoryview(self._producer.buffer)
        self._prod = self._data[:8].cast("Q")
        self._poll = _Polled([fd])

    @property
    def losses(self) -> dict[str, int]:
        """Records the program could not submit, by cause (its counter map; empty without one)."""
        return _counts(self._lost, self._causes)

    @property
    def lost(self) -> int:
        """Records the program could not submit, all causes."""
        return sum(self.losses.values())

    def read(self, limit: int | None = None) -> list:
        """Every committed record available now (at most ``limit``, and at most about one
        ring's worth: records committed during the read wait for the next), oldest first.

        Records of a fixed-size type are decoded a run at a time (:func:`batch_decoder`):
        the run of committed records of that size from the consumer position, found from
        their headers in one step; the rest (a busy or discarded record, another size)
        header by header.
        """
        cons_word, prod_word = self._cons, self._prod
        cons, prod = cons_word[0], prod_word[0]
        out: List[Any] = []
        if self._batch is not None and limit is None and cons < prod:
            cons = self._read_run(cons, prod, out)
            cons_word[0] = cons
            prod = prod_word[0]
        append, decode, data, mask = out.append, self._decode, self._data, self._mask
        unpack, hdr = _U32.unpack_from, RINGBUF_HDR
        left = -1 if limit is None else limit
        while cons < prod and left:
            off = PAGE + (cons & mask)
            word = unpack(data, off)[0]
            if word & RINGBUF_BUSY:
                break
            length = word & 0x3FFF_FFFF
            if not word & RINGBUF_DISCARD:
                append(decode(data, off + hdr, length))
                left -= 1
            cons += (length + hdr + 7) & ~7
        cons_word[0] = cons  # what was there when the read began: a flood cannot keep it going
        return out

    def _read_run(self, cons: int, prod: int, out: list) -> int:
        """Decode the run of committed fixed-size records at *cons* into *out*; the new position."""
        size, decode = self._batch  # type: ignore[misc]
        stride = (size + RINGBUF_HDR + 7) & ~7
        count = (prod - cons) // stride
        if not count:
            return cons
        off = PAGE + (cons & self._mask)
        run = self._data[off:off + count * stride]  # contiguous: the data pages are mapped twice
        words = run.cast("I")[::stride // 4].tolist()  # each record's length word
        if words.count(size) != count:  # stop before the first busy, discarded or other record
            count = next(i for i, w in enumerate(words) if w != size)
        if count:
            out.extend(decode(run[:count * stride]))
        return cons + count * stride

    def poll(self, timeout: float | None = None, limit: int | None = None) -> list:
        """:meth:`read`, first waiting up to ``timeout`` seconds (at most ``max_wait``) if
        nothing is there."""
        records = self.read(limit)
        if not records:
            wait = timeout
            if self.max_wait is not None:
                wait = self.max_wait if timeout is None else min(timeout, self.max_wait)
            if self._poll.wait(wait) or self.max_wait is not None:
                records = self.read(limit)
        return records

    def wake_on(self, fd: int) -> None:
        """Also end :meth:`poll`'s wait when *fd* becomes readable (e.g. a signal wakeup fd)."""
        self._poll.add(fd)

    def close(self) -> None:
        """Unmap (the map itself stays its owner's)."""
        if self._producer.closed:
            return
        self._poll.close()
        for view in (self._cons, self._prod, self._cons_view, self._data):
            view.release()
        self._producer.close()
        self._consumer.close()

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- perf buffers ------------------------------------------------------------------

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
#: struct perf_event_mmap_page: data_head, data_tail, data_offset, data_size
_HEAD, _TAIL, _DATA_OFFSET, _DATA_SIZE = 1024, 1032, 1040, 1048
_PERF_HEADER = struct.Struct("=IHH")


def online_cpus() -> list[int]:
    """The CPUs that are online now."""
    with open("/sys/devices/system/cpu/online") as f:
        text = f.read().strip()
    cpus: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


class _PerfRing:
    """One CPU's BPF-output perf event and its mmap'd ring."""

    def __init__(self, cpu: int, pages: int) -> None:
        attr = ffi.new("struct perf_event_attr *")
        attr.type, attr.config = PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT
        attr.sample_type, attr.sample_period, attr.wakeup_events = PERF_SAMPLE_RAW, 1, 1
        self.cpu = cpu
        self.event = perf_event_open(attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
        try:
            self.mapping = Mapping(self.event.fileno(), PAGE * (1 + pages))
        except BaseException:
            self.event.close()
            raise
        self.view = memoryview(self.mapping.buffer)
        #: data_head and data_tail as single 8-byte words (see the module docstring)
        self.head_tail = self.view[_HEAD:_TAIL + 8].cast("Q")
        self.offset = _U64.unpack_from(self.view, _DATA_OFFSET)[0] or PAGE
        self.size = _U64.unpack_from(self.view, _DATA_SIZE)[0] or PAGE * pages

    def close(self) -> None:
        self.head_tail.release()
        self.view.release()
        self.mapping.close()
        self.event.close()


class PerfBuffer:
    """Reader of a perf event array: one ring of ``pages`` (a power of two) pages per online CPU.

    The kernel writes a ring's PERF_RECORD_LOST only when a later sample
    reaches that ring, so a ring that overflowed last never reports it:
    ``lost`` is exact only with a program-side counter (``lost=``, a per-CPU
    array the program increments when ``bpf_perf_event_output`` fails).
    """

    def __init__(self, perf_map: Map, record: RecordType = None, pages: int = 8,
                 lost: Map | None = None, causes: tuple[str, ...] = ("lost",)) -> None:
        if perf_map.spec.type != MapType.PERF_EVENT_ARRAY:
            raise UsageError(f"not a perf event array map: {perf_map!r}")
        if pages < 1 or pages & (pages - 1):
            raise UsageError(f"perf buffer pages must be a power of two, not {pages}")
        self.map = perf_map
        self._decode = decoder(record)
        self._lost, self._causes = lost, causes
        #: samples the kernel dropped, as PERF_RECORD_LOST has reported them so far
        self.kernel_lost = 0
        self._rings: list[_PerfRing] = []
        try:
            for cpu in online_cpus():
                if cpu >= possible_cpus():
                    continue
                ring = _PerfRing(cpu, pages)
                self._rings.append(ring)
                perf_map[cpu] = ring.event.fileno()
                ioctl(ring.event.fileno(), PERF_EVENT_IOC_ENABLE)
        except BaseException:
            self.close()
            raise
        self._poll = _Polled(r.event.fileno() for r in self._rings)

    @property
    def losses(self) -> dict[str, int]:
        """Samples that did not reach a ring, by cause: the program's counts where it keeps
        them (every failed output, reported or not), else what PERF_RECORD_LOST said."""
        if self._lost is None:
            return {"lost": self.kernel_lost}
        return _counts(self._lost, self._causes)

    @property
    def lost(self) -> int:
        """Samples that did not reach a ring, all causes."""
        return sum(self.losses.values())

    def read(self) -> list:
        """Every sample available now on every CPU (CPU by CPU, each oldest first)."""
        out: List[Any] = []
        for ring in self._rings:
            self._read_ring(ring, out)
        return out

    def _read_ring(self, ring: _PerfRing, out: list) -> None:
        view, base, size = ring.view, ring.offset, ring.size
        head, tail = ring.head_tail[0], ring.head_tail[1]
        while tail < head:
            start = tail % size
            header = _wrapped(view, base, size, start, _PERF_HEADER.size)
            kind, _misc, length = _PERF_HEADER.unpack(header)
            body = _wrapped(view, base, size, (start + _PERF_HEADER.size) % size,
                            length - _PERF_HEADER.size)
            if kind == PERF_RECORD_SAMPLE:
                raw = _U32.unpack_from(body)[0]
                out.append(self._decode(body, 4, raw))
            elif kind == PERF_RECORD_LOST:
                self.kernel_lost += _U64.unpack_from(body, 8)[0]  # after the u64 id
            tail += length
        ring.head_tail[1] = tail

    def poll(self, timeout: float | None = None) -> list:
        """:meth:`read`, first waiting up to ``timeout`` seconds if nothing is there."""
        records = self.read()
        if not records and self._poll.wait(timeout):
            records = self.read()
        return records

    def wake_on(self, fd: int) -> None:
        """Also end :meth:`poll`'s wait when *fd* becomes readable (e.g. a signal wakeup fd)."""
        self._poll.add(fd)

    def close(self) -> None:
        """Remove the rings from the map and close them."""
        rings, self._rings = self._rings, []
        for ring in rings:
            if not self.map.closed:
                self.map.delete(ring.cpu)
            ring.close()
        if hasattr(self, "_poll"):
            self._poll.close()

    def __enter__(self) -> PerfBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wrapped(view: memoryview, base: int, size: int, start: int, length: int) -> bytes:
    """``length`` bytes of a ring of ``size`` at ``base`` from ``start``, across the wrap."""
    end = start + length
    if end <= size:
        return bytes(view[base + start:base + end])
    return bytes(view[base + start:base + size]) + bytes(view[base:base + end - size])


# -- stack traces ------------------------------------------------------------------


class StackTraces:
    """Stacks a program recorded with ``bpf_get_stackid`` in a stack trace map.

    A stack id names the same stack for the map's life (ids are hashes of the
    stack; a different stack that collides gets -EEXIST, not the id), so kernel
    stacks are looked up and symbolised once per id: a flood of drops from one
    code path costs one map lookup and one symbolisation in all.
    """

    def __init__(self, stacks: Map) -> None:
        if stacks.spec.type != MapType.STACK_TRACE:
            raise UsageError(f"not a stack trace map: {stacks!r}")
        self.map = stacks
        self._depth = int(stacks.info().value_size) // 8
        self._kernel: dict[int, tuple[str, ...]] = {}

    def addresses(self, stack_id: int) -> list[int]:
        """The instruction pointers of stack ``stack_id``, innermost first."""
        raw = self.map.lookup(stack_id)
        if raw is None:
            raise UsageError(f"no stack {stack_id} in {self.map!r}")
        ips = struct.unpack(f"={self._depth}Q", raw if isinstance(raw, bytes) else bytes(raw))
        return [ip for ip in ips if ip]

    def kernel(self, stack_id: int) -> list[str]:
        """A kernel stack as ``sym+0x1a`` frames."""
        frames = self._kernel.get(stack_id)
        if frames is None:
            symbols = Kallsyms.load()
            frames = self._kernel[stack_id] = tuple(symbols.symbolize(ip) for ip in self.addresses(stack_id))
        return list(frames)

    def user(self, stack_id: int, pid: int) -> list[str]:
        """A user stack of process ``pid`` as ``sym+0x1a (file)`` frames."""
        symbols = UserSymbols(pid)
        return [symbols.symbolize(ip) for ip in self.addresses(stack_id)]
