"""``--raw``: the kernel's records as they are, after a header that is enough to decode them.

dropmon under a flood of exactly 100 datagrams to a closed port: the stream is the header
line and 100 records; they are decoded here from the header alone (offsets, types, the
enum table), as a reader without pybpfasm would.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from tests.events.flood import PORT, RX_ADDR, TX_ADDR, Flood


def test_raw_stream_decodes_from_its_header_alone():
    with Flood("pev") as flood:
        proc = subprocess.Popen([sys.executable, "-m", "pybpfasm.cli", "dropmon", "--raw", "--no-stack",
                                 "--netns", str(flood.inode)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while b"Tracing" not in proc.stderr.readline():
            assert proc.poll() is None
        assert flood.send(100) == 100
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    head, _, body = out.partition(b"\n")
    header = json.loads(head)
    assert header["format"] == "pybpfasm-raw/1" and header["record"] == "DropEvent"
    size, fields = header["size"], {f["name"]: f for f in header["fields"]}
    assert len(body) == 100 * size

    def field(rec: bytes, name: str):
        f = fields[name]
        raw = rec[f["offset"]:f["offset"] + f["size"]]
        kind = f["type"]
        if kind.startswith("char["):
            return raw.split(b"\0")[0].decode()
        if kind.startswith("u8["):
            return raw
        value = int.from_bytes(raw, "big" if kind.startswith("be") else header["byteorder"])
        if " enum " in kind:
            return header["enums"][kind.split()[-1]].get(str(value), value)
        return value

    records = [body[i:i + size] for i in range(0, len(body), size)]
    assert {field(r, "pkt.dport") for r in records} == {PORT}
    assert {field(r, "reason") for r in records} == {"NO_SOCKET"}
    assert {field(r, "pkt.saddr")[:4] for r in records} == {bytes(map(int, TX_ADDR.split(".")))}
    assert {field(r, "pkt.daddr")[:4] for r in records} == {bytes(map(int, RX_ADDR.split(".")))}
    assert {field(r, "comm") for r in records} == {"pybpfasm-flood-"}
    assert len({field(r, "pkt.ip_id") for r in records}) == 100


def test_raw_and_json_together_is_one_line_and_exit_2():
    run = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "dropmon", "--raw", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "--raw and --json" in run.stderr
