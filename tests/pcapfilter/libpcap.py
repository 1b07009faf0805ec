"""libpcap as the oracle: its compiled classic BPF (``tcpdump -ddd``), run by the kernel
as a socket filter on an AF_PACKET socket (``SO_ATTACH_FILTER``).

tcpdump compiles against a capture file of link type EN10MB, so the program
is libpcap's for plain Ethernet bytes (a live Linux capture would also test
the kernel's out-of-band VLAN tag).
"""

from __future__ import annotations

import ctypes
import shutil
import socket
import struct
import subprocess
from functools import cache
from pathlib import Path

SO_ATTACH_FILTER = 26
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
ETH_P_ALL = 0x0003


def tcpdump() -> str | None:
    return shutil.which("tcpdump")


@cache
def _capture_file(directory: str) -> str:
    path = Path(directory) / "ppf-en10mb.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
    return str(path)


def _command(expr: str, directory: str, optimize: bool) -> list[str]:
    return [tcpdump(), "-r", _capture_file(directory), *(() if optimize else ("-O",)), "-ddd", expr]


def classic_program(expr: str, directory: str, optimize: bool = True) -> list[tuple[int, int, int, int]]:
    """libpcap's classic BPF for *expr*: (code, jt, jf, k) per instruction (unoptimised: ``-O``)."""
    out = subprocess.run(_command(expr, directory, optimize),
                         capture_output=True, text=True, check=True).stdout.split("\n")
    count = int(out[0])
    return [tuple(int(x) for x in line.split()) for line in out[1:1 + count]]  # type: ignore[misc]


def compile_error(expr: str, directory: str, optimize: bool = True) -> str | None:
    """libpcap's complaint about *expr* (``tcpdump: ...``), or None if it compiles."""
    proc = subprocess.run(_command(expr, directory, optimize), capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    return [line for line in proc.stderr.splitlines() if line.startswith("tcpdump: ")][-1]


def compiles(expr: str, directory: str) -> bool:
    """Whether libpcap accepts *expr*."""
    return compile_error(expr, directory) is None


class FilteredSocket:
    """An AF_PACKET socket on one interface that receives what libpcap's filter accepts."""

    def __init__(self, ifname: str, program: list[tuple[int, int, int, int]]) -> None:
        # protocol 0 receives nothing until bound: no frame is queued before the filter
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        insns = b"".join(struct.pack("HBBI", *insn) for insn in program)
        self._buf = ctypes.create_string_buffer(insns)  # kept alive while the kernel copies it
        fprog = struct.pack("HL", len(program), ctypes.addressof(self._buf))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((ifname, ETH_P_ALL))
        self.sock.setblocking(False)

    def drain(self) -> list[bytes]:
        """The outgoing frames queued on this socket since the last drain."""
        frames = []
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except BlockingIOError:
                return frames
            if addr[2] == socket.PACKET_OUTGOING:
                frames.append(data)

    def close(self) -> None:
        self.sock.close()
