"""A pcapng writer for the packet tools: a section header, one interface description block per
interface (name, link type, snap length, nanosecond timestamps), and an enhanced packet block
per packet with an ``opt_comment`` (e.g. the drop reason, location and interface).

::

    with PcapngWriter(open_capture("drops.pcapng")) as out:
        out.packet("srv0", LINKTYPE_ETHERNET, frame, length=1514, ts_ns=t, comment="NO_SOCKET at ...")

Blocks follow draft-ietf-opsawg-pcapng (the format tcpdump, tshark and Wireshark read);
everything is written little-endian, the machine order of the byte-order magic. tshark reads
files whose interfaces differ in link type; libpcap (tcpdump) reads only files of one.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from pybpfasm.errors import UsageError

#: link types (tcpdump.org linktypes): frames with an Ethernet header, or bare IPv4/IPv6
LINKTYPE_ETHERNET, LINKTYPE_RAW = 1, 101
SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, OPT_COMMENT = 0, 1
IF_NAME, IF_TSRESOL = 2, 9
SHB_USERAPPL = 4


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    body = b"".join(struct.pack("<HH", code, len(value)) + _pad(value) for code, value in options)
    return body + struct.pack("<HH", OPT_END, 0)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def open_capture(path: str) -> BinaryIO:
    """*path* created for writing, refusing symlinks and anything but a regular file (one line if not)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
    return os.fdopen(fd, "wb")


class PcapngWriter:
    """Packets to a pcapng stream; interfaces get their description block when first used."""

    def __init__(self, out: BinaryIO, snaplen: int = 0, application: str = "pybpfasm") -> None:
        self.out, self.snaplen = out, snaplen
        self.interfaces: dict[tuple[str, int], int] = {}
        self.packets = 0
        shb = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options([(SHB_USERAPPL, application.encode())])
        out.write(_block(SHB, shb))

    def interface(self, name: str, linktype: int) -> int:
        """The interface id of (*name*, *linktype*), described in the file the first time."""
        key = (name, linktype)
        if key not in self.interfaces:
            body = struct.pack("<HHI", linktype, 0, self.snaplen)
            body += _options([(IF_NAME, name.encode(errors="backslashreplace")), (IF_TSRESOL, bytes([9]))])
            self.out.write(_block(IDB, body))
            self.interfaces[key] = len(self.interfaces)
        return self.interfaces[key]

    def packet(self, ifname: str, linktype: int, data: bytes, length: int | None = None, ts_ns: int = 0,
               comment: str | None = None) -> None:
        """One captured packet: *data* (its first bytes), *length* on the wire, the time in ns."""
        iface = self.interface(ifname, linktype)
        body = struct.pack("<IIIII", iface, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data),
                           len(data) if length is None else max(length, len(data)))
        body += _pad(data) + _options([(OPT_COMMENT, comment.encode(errors="backslashreplace"))] if comment else [])
        self.out.write(_block(EPB, body))
        self.packets += 1

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        self.out.close()

    def __enter__(self) -> PcapngWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
