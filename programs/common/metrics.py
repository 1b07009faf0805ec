"""Prometheus metrics for counting tools: the text exposition format, an HTTP server for
``--prometheus ADDR:PORT``, atomic ``--textfile PATH`` writes (node_exporter's textfile
collector), and bounded cardinality (the first ``limit`` label sets, largest first, then ``other``).

::

    fam = Family("pybpfasm_drops_total", "packets dropped", ("reason", "ifname"))
    fam.add(("NO_SOCKET", "eth0"), 3)
    publisher = Publisher.start(args)            # None unless --prometheus/--textfile was given
    publisher.publish([fam])                     # what the next scrape (or the file) shows

Counters are the totals since the tool started (never per interval), so Prometheus's
``rate()`` and ``increase()`` work on them; a label set, once shown, keeps its own series.
"""

from __future__ import annotations

import argparse
import http.server
import ipaddress
import math
import os
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence

from pybpfasm.errors import UsageError

#: label sets a family shows before the rest are summed under ``other``
DEFAULT_LIMIT = 50
OTHER = "other"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label_value(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Family:
    """One metric: a name, help, type and samples keyed by label values (in ``labels`` order)."""

    def __init__(self, name: str, help_: str, labels: Sequence[str] = (), kind: str = "counter") -> None:
        self.name, self.help, self.labels, self.kind = name, help_, tuple(labels), kind
        self.samples: dict[tuple, float] = {}

    def add(self, values: Sequence[object] = (), n: float = 1) -> None:
        key = tuple(values)
        if len(key) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.labels)} label values needed, got {key!r}")
        self.samples[key] = self.samples.get(key, 0) + n

    def text(self) -> str:
        lines = [f"# HELP {self.name} {self.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}",
                 f"# TYPE {self.name} {self.kind}"]
        for values, n in self.samples.items():
            labels = ",".join(f'{k}="{_label_value(v)}"' for k, v in zip(self.labels, values))
            lines.append(f"{self.name}{{{labels}}} {_number(n)}" if labels else f"{self.name} {_number(n)}")
        return "\n".join(lines) + "\n"


def counters(name: str, help_: str, labels: Sequence[str], counts: Iterable[tuple[tuple, float]],
             limit: Bounded | None = None) -> Family:
    """A counter family from (label values, total) pairs (summed where they repeat), bounded by *limit*."""
    totals: dict[tuple, float] = {}
    for key, n in counts:
        totals[key] = totals.get(key, 0) + n
    fam = Family(name, help_, labels)
    for key, n in (limit.fold(totals) if limit is not None else totals).items():
        fam.add(key, n)
    return fam


def exposition(families: Iterable[Family]) -> str:
    """The Prometheus text exposition (format 0.0.4) of *families*."""
    return "".join(f.text() for f in families)


class Bounded:
    """Sticky top-N: the first ``limit`` label sets seen (the largest first when several
    arrive at once) keep their own series; later ones are summed under ``other`` in every label."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.admitted: set[tuple] = set()

    def fold(self, counts: Mapping[tuple, float]) -> dict[tuple, float]:
        for key, _ in sorted(counts.items(), key=lambda kv: -kv[1]):
            if len(self.admitted) >= self.limit:
                break
            self.admitted.add(key)
        out: dict[tuple, float] = {}
        for key, n in counts.items():
            shown = key if key in self.admitted else (OTHER,) * len(key)
            out[shown] = out.get(shown, 0) + n
        return out


# -- where the metrics go ----------------------------------------------------------------------
def listen_address(text: str) -> tuple[str, int]:
    """argparse type: ``ADDR:PORT`` (``[v6]:PORT`` for IPv6; ``:PORT`` listens on 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not ADDR:PORT (e.g. 127.0.0.1:9435)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host or "127.0.0.1")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{host!r} is not an IP address to listen on") from None
    return host or "127.0.0.1", int(port)


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--prometheus", type=listen_address, metavar="ADDR:PORT",
                       help="serve the counters as Prometheus metrics at http://ADDR:PORT/metrics")
    group.add_argument("--textfile", metavar="PATH",
                       help="write the same metrics to PATH (atomically) for node_exporter's textfile collector")


def write_textfile(path: str, text: str) -> None:
    """Replace *path* with *text* atomically: a new file beside it, synced, renamed over it."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404)
            return
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # scrapes are not the tool's output


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    body = b""


class _Server6(_Server):
    address_family = socket.AF_INET6


class Publisher:
    """Where a tool's metrics go: an HTTP endpoint, a text file, or both."""

    def __init__(self, address: tuple[str, int] | None, textfile: str | None) -> None:
        self.textfile = textfile
        self.server: _Server | None = None
        if textfile is not None:
            folder = os.path.dirname(os.path.abspath(textfile))
            if not os.path.isdir(folder):
                raise UsageError(f"--textfile: {folder} is not a directory")
        if address is not None:
            try:
                self.server = (_Server6 if ":" in address[0] else _Server)(address, _Handler)
            except OSError as err:
                raise UsageError(f"--prometheus: cannot listen on {address[0]}:{address[1]}: {err.strerror}") from None
            threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="prometheus", daemon=True).start()

    @classmethod
    def start(cls, args: argparse.Namespace) -> Publisher | None:
        address, textfile = getattr(args, "prometheus", None), getattr(args, "textfile", None)
        return None if address is None and textfile is None else cls(address, textfile)

    def publish(self, families: Iterable[Family]) -> None:
        text = exposition(families)
        if self.server is not None:
            self.server.body = text.encode()
        if self.textfile is not None:
            try:
                write_textfile(self.textfile, text)
            except OSError as err:
                raise UsageError(f"--textfile: cannot write {self.textfile}: {err.strerror}") from None

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
