"""The pcapng writer, read back by the test-only peers: tshark reads every packet, its
interface, length and comment as written; tcpdump reads the same number of packets."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pybpfasm.lab.netns import packets
from pybpfasm.tools.common.pcapng import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapngWriter, open_capture

pytestmark = pytest.mark.unprivileged


def _capture(path) -> list[tuple[str, int, bytes, str]]:
    """Three packets on two interfaces and two link types: (ifname, linktype, data, comment)."""
    udp = packets.ipv4("10.0.0.1", "10.0.0.2", packets.IPPROTO_UDP,
                       packets.udp4("10.0.0.1", "10.0.0.2", 41000, 7001, b"hello"), 7)
    frame = packets.ethernet("02:00:00:00:00:02", "02:00:00:00:00:01", udp)
    rows = [("srv0", LINKTYPE_ETHERNET, frame, "NO_SOCKET at __udp4_lib_rcv on srv0"),
            ("cli0", LINKTYPE_RAW, udp, "NEIGH_FAILED at neigh_invalidate on cli0"),
            ("srv0", LINKTYPE_ETHERNET, frame[:20], "truncated, comma, \"quotes\"")]
    with PcapngWriter(open_capture(str(path)), snaplen=96) as out:
        for i, (ifname, linktype, data, comment) in enumerate(rows):
            out.packet(ifname, linktype, data, length=len(frame) if i == 2 else None,
                       ts_ns=1_700_000_000_123_456_789 + i, comment=comment)
    return rows


def test_tshark_reads_packets_interfaces_and_comments(tmp_path):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (test-only)")
    path = tmp_path / "x.pcapng"
    rows = _capture(path)
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|",
                          "-e", "frame.interface_name", "-e", "frame.len", "-e", "frame.cap_len",
                          "-e", "frame.comment", "-e", "udp.dstport", "-e", "frame.time_epoch"],
                         capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert len(out) == 3
    seen = [line.split("|") for line in out]
    assert [s[0] for s in seen] == ["srv0", "cli0", "srv0"]
    assert [int(s[1]) for s in seen] == [len(rows[0][2]), len(rows[1][2]), len(rows[0][2])]
    assert [int(s[2]) for s in seen] == [len(rows[0][2]), len(rows[1][2]), 20]
    assert [s[3] for s in seen] == [r[3] for r in rows]
    assert seen[0][4] == seen[1][4] == "7001"
    assert seen[0][5].startswith("1700000000.123456789")


def test_tcpdump_reads_the_same_number_of_packets(tmp_path):
    """libpcap reads files of one link type only (it refuses the mixed file above), so this
    capture is Ethernet frames on two interfaces."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (test-only)")
    path = tmp_path / "x.pcapng"
    (_, linktype, frame, comment), *_ = _capture(tmp_path / "mixed.pcapng")
    with PcapngWriter(open_capture(str(path))) as out:
        for i in range(4):
            out.packet(("srv0", "srv1")[i % 2], linktype, frame, comment=f"{comment} #{i}")
    proc = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 and all(" IP 10.0.0.1.41000 > 10.0.0.2.7001: " in line for line in lines), lines
