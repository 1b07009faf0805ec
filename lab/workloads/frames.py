"""Ethernet frames with any stack of VLAN tags, sent and captured on ``AF_PACKET`` sockets,
for the XDP forwarding scenarios: what was sent, what each receiver got, byte for byte.

A capture reads the frames a device received, with the VLAN tag the kernel took out of a
frame (``skb->vlan_tci``, reported in ``PACKET_AUXDATA``) put back where it was, so the
bytes are the frame as it crossed the wire.  Frames the device sent are left out.

In a lab VM guest, ``python3 -m pybpfasm.lab.workloads.frames guest DEV REPLY_TO N`` is the
receiving end of the tap scenario: it brings DEV up (no IPv6, no ARP: silent), broadcasts a
``ready`` frame every 0.3 s until the first scenario frame comes, keeps every frame that
arrives until none has for 2 s, then sends N frames to REPLY_TO and prints what it got as
one JSON object (``{"mac": ..., "received": [hex, ...]}``).
"""

from __future__ import annotations

import json
import select
import socket
import struct
import subprocess
import sys
import time
from typing import Callable, Iterable, Sequence

from pybpfasm.link.netns import entered

from ..netns.packets import mac_bytes

ETH_P_ALL = 0x0003
#: IEEE 802 local experimental ethertype 1 (if_ether.h ETH_P_802_EX1): no stack handles it
ETH_P_802_EX1 = 0x88B5
# if_packet.h (Python's socket module names neither SOL_PACKET nor PACKET_AUXDATA)
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 1 << 4, 1 << 6
ETH_P_8021Q = 0x8100
#: struct tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid
_AUXDATA = struct.Struct("=IIIHHHH")
#: the start of every scenario frame's payload, and of the guest's own
TAG, READY, REPLY = b"pbl-xdp ", b"pbl-xdp ready", b"pbl-xdp reply %04d"
BROADCAST = "ff:ff:ff:ff:ff:ff"


def frame(dst: str, src: str, payload: bytes, tags: Sequence[tuple[int, int]] = (),
          ethertype: int = ETH_P_802_EX1) -> bytes:
    """A frame from *src* to *dst* with VLAN *tags* (outermost first), each (TPID, TCI)."""
    head = mac_bytes(dst) + mac_bytes(src)
    return head + b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in tags) + \
        struct.pack("!H", ethertype) + payload


def send(netns: str | None, ifname: str, frames: Iterable[bytes]) -> None:
    """Transmit raw *frames* on *ifname* in *netns*."""
    with entered(netns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    with sock:
        sock.bind((ifname, 0))
        for data in frames:
            sock.send(data)


class Capture:
    """Every frame *ifname* in *netns* receives from now on; :meth:`frames` reads them."""

    def __init__(self, netns: str | None, ifname: str) -> None:
        with entered(netns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((ifname, ETH_P_ALL))
        self.got: list[bytes] = []

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _read(self, timeout: float) -> bool:
        """Read what is queued, waiting up to *timeout* for the first; whether any came."""
        got = False
        while select.select([self.sock], [], [], timeout)[0]:
            data, ancillary, _, address = self.sock.recvmsg(65536, socket.CMSG_SPACE(_AUXDATA.size))
            timeout = 0
            if address[2] == socket.PACKET_OUTGOING:
                continue
            self.got.append(_with_tag(data, ancillary))
            got = True
        return got

    def frames(self, expect: int = 0, timeout: float = 2.0, quiet: float = 0.2) -> list[bytes]:
        """The frames received since the last call: read until *expect* have come (or
        *timeout*), then until none comes for *quiet* seconds (late extras are counted too)."""
        deadline = time.monotonic() + timeout
        while len(self.got) < expect and time.monotonic() < deadline:
            self._read(max(0.0, deadline - time.monotonic()))
        while self._read(quiet):
            pass
        out, self.got = self.got, []
        return out

    def wait_for(self, wanted: Callable[[bytes], bool], timeout: float) -> bool:
        """Read until a frame *wanted* comes (True) or *timeout* passes (False); the frames
        read stay for :meth:`frames`."""
        deadline = time.monotonic() + timeout
        while not any(wanted(f) for f in self.got):
            if time.monotonic() >= deadline:
                return False
            self._read(min(0.5, max(0.0, deadline - time.monotonic())))
        return True


def _with_tag(data: bytes, ancillary: list) -> bytes:
    for level, kind, raw in ancillary:
        if (level, kind) == (SOL_PACKET, PACKET_AUXDATA):
            status, *_, tci, tpid = _AUXDATA.unpack_from(raw)
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q
                return data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return data


def guest(dev: str, reply_to: str, replies: int, quiet: float = 2.0, timeout: float = 120.0) -> dict:
    """The guest's side of the tap scenario (see the module docstring)."""
    with open(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6", "w") as knob:
        knob.write("1")
    subprocess.run(["ip", "link", "set", dev, "arp", "off", "up"], check=True)
    with open(f"/sys/class/net/{dev}/address") as f:
        mac = f.read().strip()
    ready = frame(BROADCAST, mac, READY)
    received: list[bytes] = []
    with Capture(None, dev) as cap:
        deadline = time.monotonic() + timeout
        while not received and time.monotonic() < deadline:
            send(None, dev, [ready])
            received = [f for f in cap.frames(quiet=0.3) if TAG in f[14:30]]
        while True:
            more = [f for f in cap.frames(quiet=quiet) if TAG in f[14:30]]
            if not more:
                break
            received += more
    send(None, dev, [frame(reply_to, mac, REPLY % i) for i in range(replies)])
    return {"mac": mac, "received": [f.hex() for f in received]}


if __name__ == "__main__":
    if sys.argv[1:2] != ["guest"] or len(sys.argv) != 5:
        sys.exit("usage: python3 -m pybpfasm.lab.workloads.frames guest DEV REPLY_TO N")
    print(json.dumps(guest(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
