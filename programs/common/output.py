"""Where a tool's lines go: standard output, and a log file when asked.

Lines are collected and written a batch at a time (one write for many lines):
:meth:`Output.flush` writes what is pending, and the reader loop calls it
once it has caught up with the events, or when :meth:`Output.due` says the
oldest pending line has waited :data:`FLUSH_AFTER` seconds or enough bytes
are pending, so interactive use stays immediate and a flood costs few writes.
JSON rows are encoded by :class:`JsonLines`: the json module's own C encoder,
made once with ``json.dumps``' settings, so each line is the bytes
``json.dumps(row)`` gives, without rebuilding an encoder per row.

Writes go straight to the file descriptors: CPython's buffered writer loses
the rest of a large write that a signal handler interrupts part-way (seen
here with the Ctrl-C flag handler and a full pipe), while ``os.write``
returns what it wrote.  The log file is opened the way a root process must
open a path a user may control: no symlinks followed at the last component, regular files
only, appended to.  Text output escapes control characters, so a process
name cannot forge lines or send escape codes to root's terminal.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import time
from json import encoder as _json
from typing import Any, Callable, Iterable

from pybpfasm.errors import UsageError

#: C0 controls, DEL and C1 controls -> a visible escape (tab and newline too)
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def escape(text: str) -> str:
    """*text* with control characters shown as ``\\xNN``."""
    return text.translate(_CONTROLS)


def escape_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row whose strings, however deep in lists and dicts, are safe to print as text."""
    return {key: _escaped(value) for key, value in row.items()}


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    return value


#: the longest a written line waits for others to share its write (seconds)
FLUSH_AFTER = 0.05
#: pending bytes that are written at once
FLUSH_BYTES = 1 << 16


class JsonLines:
    """``json.dumps(row)`` for many rows: the C encoder json.dumps builds on every call,
    built once with the same settings (ASCII output, ``, `` and ``: `` separators, NaN
    allowed, keys unsorted).  Rows are never circular, so there is no cycle check."""

    def __init__(self) -> None:
        make = _json.c_make_encoder
        if make is None:  # a Python without the C accelerator
            self._encode: Callable[[Any], str] = json.dumps
        else:
            chunks = make(None, json.JSONEncoder().default, _json.encode_basestring_ascii, None,
                          ": ", ", ", False, False, True)
            self._encode = lambda row: "".join(chunks(row, 0))

    def line(self, row: Any) -> str:
        return self._encode(row)


#: the first line of a ``--raw`` stream names its format and version
RAW_FORMAT = "pybpfasm-raw/1"


def raw_header(record: Any) -> bytes:
    """The self-describing first line of a ``--raw`` stream of *record* (an eDSL Record).

    One JSON object and a newline; then records of ``size`` bytes each, back to back, in
    the machine's byte order (``byteorder``).  ``struct`` is the :mod:`struct` format of
    one record; ``fields`` gives every field (nested records flattened to ``pkt.saddr``)
    with its offset, size and type (``u32``, ``be16``, ``s32``, ``char[16]``, ``u8[6]``,
    ``u32 enum NAME``), and ``enums`` each enum's value -> name table, so a reader needs
    nothing of pybpfasm to decode the stream.
    """
    from pybpfasm.dsl.record import KernelEnum

    fields: list[dict[str, Any]] = []
    enums: dict[str, dict[str, str]] = {}

    def walk(rec: Any, base: int, prefix: str) -> None:
        for name, offset, ty in rec.FIELDS:
            if isinstance(ty, type):
                walk(ty, base + offset, f"{prefix}{name}.")
                continue
            kind = str(ty)
            if isinstance(ty, KernelEnum):
                kind = f"{'s' if ty.signed else 'u'}{8 * ty.size} enum {ty.enum}"
                enums[ty.enum] = {str(v): n for v, n in sorted(ty.names().items())}
            fields.append({"name": prefix + name, "offset": base + offset, "size": ty.size, "type": kind})

    walk(record, 0, "")
    header = {"format": RAW_FORMAT, "record": record.__name__, "size": record.size,
              "byteorder": sys.byteorder, "struct": record.struct_format(), "fields": fields,
              "enums": enums}
    return (json.dumps(header) + "\n").encode()


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of *data* to *fd*, however many writes it takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def open_log(path: str) -> int:
    """*path* opened for appending (a descriptor), refusing symlinks and anything but a regular file."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as err:
        hint = " (a symlink: give the file itself)" if err.errno == errno.ELOOP else ""
        raise UsageError(f"--log-file: cannot open {path}: {err.strerror}{hint}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"--log-file: {path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


class Output:
    """Lines to standard output and, optionally, a log file."""

    def __init__(self, json_lines: bool, log_path: str | None = None) -> None:
        self.json = json_lines
        self._log = open_log(log_path) if log_path else None
        sys.stdout.flush()
        self._stdout = sys.stdout.fileno()
        self._json_line = JsonLines().line
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._since = 0.0

    def rows(self, rows: Iterable[dict[str, Any]], text: Any) -> None:
        """Write rows: JSON objects, or ``text(row)`` of each row with its strings escaped."""
        if self.json:
            self.lines(list(map(self._json_line, rows)))
        else:
            self.lines([text(escape_row(r)) for r in rows])

    def lines(self, lines: list[str]) -> None:
        """Queue *lines* (already formatted) for the next :meth:`flush`."""
        if not lines:
            return
        self.binary(("\n".join(lines) + "\n").encode("utf-8", "backslashreplace"))

    def binary(self, data: bytes) -> None:
        """Queue raw bytes (a ``--raw`` stream) for the next :meth:`flush`."""
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def due(self) -> float | None:
        """Seconds until pending lines must be written (None: nothing pending)."""
        if not self._pending:
            return None
        return max(0.0, self._since + FLUSH_AFTER - time.monotonic())

    def flush(self) -> None:
        """Write every pending line (one write to each destination)."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        write_all(self._stdout, data)
        if self._log is not None:
            write_all(self._log, data)

    def lost(self, causes: dict[str, int]) -> None:
        """Report the events lost since the last report, by cause (JSON: a line
        ``{"lost": N, "full": N, ...}``, the total and each cause that lost some)."""
        if causes and self.json:
            self.lines([json.dumps({"lost": sum(causes.values()), **causes})])

    def close(self) -> None:
        self.flush()
        if self._log is not None:
            os.close(self._log)
            self._log = None
