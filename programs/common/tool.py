"""The tool frame: a tool declares records, programs, options and rows; this runs it.

::

    class Opensnoop(Tool):                           # registered in pybpfasm.tools.TOOLS
        tracing = "open() syscalls"                  # "Tracing open() syscalls... Ctrl-C to end."
        events = Events(OpenEvent, name="opens")     # per-event tools: the stream rows come from

        def add_arguments(self, parser): ...         # the original's flags
        def options(self, args): ...                 # -> what the build depends on (hashable repr)
        def programs(self, opts): ...                # -> ProgramDefs to load and attach, in order
        def row(self, ev): ...                       # a record -> a dict (JSON keys = text columns)
        def text(self, row): ...                     # a row -> a text line (strings already escaped)

The frame owns the rest: the shared options (``--json``, ``--log-file``,
``--count``, ``--duration``, ``-i/--interval`` for periodic tools, ``--buffer``,
``--btf``, ``--no-cache``), the Collection and its program cache, releasing
BTF once everything is built, the readiness line (``Tracing ... Ctrl-C to
end.`` on stderr, once attached), the reader loop, Ctrl-C and SIGTERM (what was
read is printed, then the tool exits 0), and lost events (``{"lost": N}``
lines in JSON, ``Lost N events`` on stderr).  Periodic tools (``interval``),
and tools that report once at exit unless ``-i`` is given (``at_exit``), implement
:meth:`Tool.tick` instead of (or as well as) :meth:`Tool.row`, and may give a
:class:`~.table.Table` that sorts, cuts and aligns each interval's rows.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
from typing import Any, ClassVar

from pybpfasm.dsl import Collection, Events, ProgramDef
from pybpfasm.errors import UsageError
from pybpfasm.kernel import KernelError

from . import options as types
from .output import Output, escape_row, raw_header
from .table import Table, interval_header

#: how long one poll of the event stream waits when nothing arrives (seconds)
POLL = 0.25
#: a batch of fewer events than this means the reader has caught up: its lines are written
#: at once (larger batches wait, at most output.FLUSH_AFTER, to share a write)
CAUGHT_UP = 64


class Tool:
    """Base class of the tools (see the module docstring)."""

    #: what the readiness line says is traced
    tracing: ClassVar[str] = "events"
    #: the event stream rows come from (None for purely periodic tools)
    events: ClassVar[Events | None] = None
    #: seconds between ticks (None: not a periodic tool, no -i option)
    interval: ClassVar[float | None] = None
    #: a tool that reports once, when it ends, unless ``-i`` asks for every interval
    at_exit: ClassVar[bool] = False
    #: how periodic tools print a tick's rows (None: :meth:`text` per row)
    table: ClassVar[Table | None] = None

    # -- what a tool provides ----------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The tool's own options (the frame adds the shared ones)."""

    def options(self, args: argparse.Namespace) -> Any:
        """What the programs are built from; its ``repr`` keys the program cache."""
        return None

    def programs(self, opts: Any) -> list[ProgramDef]:
        """The programs to load and attach, in attach order."""
        raise NotImplementedError

    def prepare(self, coll: Collection, opts: Any) -> None:
        """User-space set-up once the programs are loaded (maps to seed, symbolisers)."""

    def row(self, event: Any) -> dict[str, Any] | None:
        """An event as a row (None: not shown)."""
        return event.as_dict()

    def text(self, row: dict[str, Any]) -> str:
        """A row as a text line."""
        return " ".join("-" if v is None else str(v) for v in row.values())

    def header(self) -> str | None:
        """The text header printed once before the first line (None: no header)."""
        return None

    def tick(self, coll: Collection, opts: Any) -> list[dict[str, Any]]:
        """Periodic tools: the rows of one interval (each a JSON line with ``--json``)."""
        return []

    def tick_text(self, rows: list[dict[str, Any]]) -> list[str]:
        """Periodic tools: one interval's rows as text (strings already escaped)."""
        if self.table is not None:
            return [interval_header(), *self.table.text(rows).splitlines()]
        return [interval_header(), *(self.text(r) for r in rows)]

    def tick_json(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Periodic tools: one interval's rows as JSON objects (the table's top rows)."""
        return rows if self.table is None else self.table.json_rows(rows)

    def finished(self) -> bool:
        """Periodic tools: whether what was asked is done (asked after each tick)."""
        return False

    def metrics(self) -> list | None:
        """Counting tools: their totals as :class:`~.metrics.Family` objects, for
        ``--prometheus``/``--textfile`` (offered to the tools that define this)."""
        return None

    def notes(self, coll: Collection, opts: Any) -> list[str]:
        """Lines for stderr before tracing starts (what this kernel cannot report)."""
        return []

    def unavailable(self) -> str | None:
        """Why this kernel cannot run the tool at all (None: it can), asked before any build:
        e.g. "the openvswitch module is not loaded".  The run then ends with that one line."""
        return None

    # -- the frame ---------------------------------------------------------------------------
    def configure(self, parser: argparse.ArgumentParser) -> None:
        """The tool's options and the shared ones."""
        self.add_arguments(parser)
        shared = parser.add_argument_group("common options")
        shared.add_argument("--json", action="store_true", help="one JSON object a line")
        shared.add_argument("--log-file", metavar="PATH", help="also append the output to this file")
        if self.events is not None:
            shared.add_argument("--count", type=types.count, metavar="N", help="exit after N events")
            shared.add_argument("--raw", action="store_true",
                                help="write the kernel's records as they are: a JSON header line "
                                     "describing the record, then the records back to back")
            shared.add_argument("--buffer", choices=("auto", "ringbuf", "perf"), default="auto",
                                help="how events reach user space: a ring buffer (5.8+, auto where "
                                     "present) or per-CPU perf buffers")
        if self.at_exit:
            shared.add_argument("-i", "--interval", type=types.seconds, metavar="S",
                                help="print every S seconds (default: once, at exit)")
        elif self.interval is not None:
            shared.add_argument("-i", "--interval", type=types.seconds, default=self.interval,
                                metavar="S", help=f"seconds between outputs (default {self.interval:g})")
        shared.add_argument("--duration", type=types.seconds, metavar="S", help="exit after S seconds")
        if type(self).metrics is not Tool.metrics:
            from . import metrics

            metrics.add_arguments(shared)
        shared.add_argument("--btf", metavar="FILE",
                            help="kernel types from FILE (raw BTF or a vmlinux with .BTF) for "
                                 "kernels without /sys/kernel/btf/vmlinux")
        shared.add_argument("--no-cache", action="store_true",
                            help="build the programs even if a cached build fits")

    def run(self, args: argparse.Namespace) -> int:
        """Build, load, attach, read until done; the process exit status."""
        stop = _StopFlag()
        self.args = args
        with stop:
            opts = self.options(args)
            out = Output(args.json, args.log_file)  # bad input is exit 2, before "cannot run here"
            self.publisher = None
            try:
                from .metrics import Publisher

                self.publisher = Publisher.start(args)
                why = self.unavailable()
                if why is not None:
                    raise KernelError(f"cannot trace on this kernel: {why}")
                with self._collection(args) as coll:
                    reader = self._start(coll, opts)
                    for line in self.notes(coll, opts):
                        print(f"note: {line}", file=sys.stderr)
                    print(f"Tracing {self.tracing}... Ctrl-C to end.", file=sys.stderr, flush=True)
                    _Loop(self, coll, opts, args, out, stop).run(reader)
            finally:
                out.close()
                if self.publisher is not None:
                    self.publisher.close()
        return 0

    def _collection(self, args: argparse.Namespace) -> Collection:
        from pybpfasm.dsl.cache import ProgramCache

        if getattr(args, "raw", False) and args.json:
            raise UsageError("--raw and --json: choose one")
        btf = None
        if args.btf is not None:
            from pybpfasm.btf import BTF, BTFError

            try:
                btf = BTF.from_file(args.btf)
            except BTFError as err:
                raise UsageError(f"--btf: {err}") from None
        if self.events is not None:
            self.events.kind = args.buffer
            self.events.resolve()
        salt = (type(self).__module__, type(self).__qualname__,
                self.events.kind if self.events is not None else None)
        cache = None if args.no_cache else ProgramCache(btf_path=args.btf, salt=salt)
        return Collection(btf=btf, cache=cache)

    def _start(self, coll: Collection, opts: Any) -> Any:
        """Load every program, free what the build needed, open the event reader, attach,
        prepare; the reader (None for tools without events).  The reader comes before the
        links, so no event of an attached program finds its ring missing."""
        pdefs = self.programs(opts)
        for pdef in pdefs:
            coll.load(pdef, opts)
        _release_build_memory()
        reader = None
        if self.events is not None:
            reader = self.events.reader(coll, raw=getattr(self.args, "raw", False))
        try:
            for pdef in pdefs:
                coll.attach(pdef)
            self.prepare(coll, opts)
        except BaseException:
            if reader is not None:
                reader.close()
            raise
        return reader


def _release_build_memory() -> None:
    """Drop the kernel's BTF (tens of MB) once nothing more is built."""
    btf = sys.modules.get("pybpfasm.btf")
    if btf is not None:
        import gc

        btf.BTF.release_kernel()
        gc.collect()  # the builder's objects are cycles that still hold the BTF


def lost_causes(losses: dict[str, int]) -> str:
    """``full 3, reserve 1``: the causes that lost events."""
    return ", ".join(f"{cause} {n}" for cause, n in losses.items() if n)


class _StopFlag:
    """SIGINT and SIGTERM set a flag (the loop ends after printing what it read) and
    write to a wakeup pipe, so a reader waiting for events wakes at once."""

    def __init__(self) -> None:
        self.set = False
        self._previous: dict[int, Any] = {}
        self.wakeup, self._write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def __bool__(self) -> bool:
        return self.set

    def _handle(self, *_: object) -> None:
        self.set = True

    def __enter__(self) -> _StopFlag:
        self._old_wakeup = signal.set_wakeup_fd(self._write_end, warn_on_full_buffer=False)
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self.wakeup)
        os.close(self._write_end)


class _Loop:
    """The reader loop: events to rows, ticks, limits, lost accounting."""

    def __init__(self, tool: Tool, coll: Collection, opts: Any, args: argparse.Namespace,
                 out: Output, stop: _StopFlag) -> None:
        self.tool, self.coll, self.opts, self.out, self.stop = tool, coll, opts, out, stop
        self.limit: int | None = getattr(args, "count", None)
        self.interval: float | None = getattr(args, "interval", None)
        #: periodic or at-exit tools report the last (partial) interval however the run ends
        self.reports = self.interval is not None or tool.at_exit
        self.deadline = None if args.duration is None else time.monotonic() + args.duration
        self.seen = 0
        self.reported_lost: dict[str, int] = {}
        self.raw = getattr(args, "raw", False)
        self.headed = args.json
        self.published = 0.0

    def run(self, reader: Any) -> None:
        """Read *reader* (None: ticks only) until stopped, counted out or timed out; closes it."""
        if reader is not None:
            reader.wake_on(self.stop.wakeup)
        self.last_tick = time.monotonic()
        next_tick = None if self.interval is None else self.last_tick + self.interval
        try:
            while not self.stop:
                now = time.monotonic()
                flush = self.out.due()
                wake = min(t for t in (next_tick, self.deadline, now + POLL,
                                       None if flush is None else now + flush) if t is not None)
                if reader is not None:
                    batch = reader.poll(max(0.0, wake - now))
                    if self._events(batch, reader):
                        return
                    if len(batch) < CAUGHT_UP or self.out.due() == 0.0:
                        self.out.flush()  # caught up (or kept waiting long enough): write now
                else:
                    select.select([self.stop.wakeup], [], [], max(0.0, wake - now))
                now = time.monotonic()
                if next_tick is not None and now >= next_tick:
                    self._tick()
                    next_tick += self.interval
                    if self.tool.finished():
                        return
                self._publish(now)
                if self.deadline is not None and now >= self.deadline:
                    break
            if reader is not None:
                self._events(reader.read(), reader)
            if self.reports and time.monotonic() - self.last_tick > 0.001:
                self._tick()  # the partial interval (all of it for at-exit tools)
        finally:
            if reader is not None:
                self._lost(reader)
                if reader.lost:
                    print(f"Lost {reader.lost} events ({lost_causes(reader.losses)})", file=sys.stderr)
                reader.close()

    def _publish(self, now: float) -> None:
        """The metrics at most once a second between ticks (and at each tick)."""
        if self.tool.publisher is not None and now - self.published >= 1.0:
            self.published = now
            self.tool.publisher.publish(self._families())

    def _families(self) -> list:
        """The tool's metrics, and for event tools the events lost so far, by cause."""
        families = list(self.tool.metrics() or [])
        if self.tool.events is not None:
            from .metrics import counters

            families.append(counters("pybpfasm_lost_events_total", "events the kernel could not hand to user space",
                                     ("cause",), (((c,), n) for c, n in self.reported_lost.items())))
        return families

    def _header(self) -> None:
        if not self.headed:
            header = self.tool.header()
            if header is not None:
                self.out.lines([header])
            self.headed = True

    def _events(self, batch: list, reader: Any) -> bool:
        """Print a batch; True once ``--count`` events were printed."""
        if self.raw:
            return self._raw(batch, reader)
        rows = []
        for ev in batch:
            row = self.tool.row(ev)
            if row is None:
                continue
            rows.append(row)
            if self.limit is not None and self.seen + len(rows) >= self.limit:
                break
        if rows:
            self._header()
            self.out.rows(rows, self.tool.text)
            self.seen += len(rows)
        self._lost(reader)
        return self.limit is not None and self.seen >= self.limit

    def _raw(self, batch: list[bytes], reader: Any) -> bool:
        """Write a batch of records as they are (``--raw``), after the header line."""
        if not self.headed:
            self.out.binary(raw_header(self.tool.events.record))
            self.headed = True
        if self.limit is not None:
            batch = batch[:self.limit - self.seen]
        if batch:
            self.out.binary(b"".join(batch))
            self.seen += len(batch)
        self._lost(reader)
        return self.limit is not None and self.seen >= self.limit

    def _lost(self, reader: Any) -> None:
        """Report the events lost since the last report, by cause."""
        losses = reader.losses
        new = {cause: n - self.reported_lost.get(cause, 0) for cause, n in losses.items()}
        new = {cause: n for cause, n in new.items() if n > 0}
        if new:
            if not self.raw:
                self.out.lost(new)
            if not self.out.json:
                print(f"Lost {sum(new.values())} events ({lost_causes(new)})", file=sys.stderr)
            self.reported_lost = losses

    def _tick(self) -> None:
        self.last_tick = time.monotonic()
        rows = self.tool.tick(self.coll, self.opts)
        if self.tool.publisher is not None:
            self.tool.publisher.publish(self._families())
        if self.out.json:
            self.out.rows(self.tool.tick_json(rows), None)
        else:
            self.out.lines(self.tool.tick_text([escape_row(r) for r in rows]))
        self.out.flush()
