"""Prometheus metrics of the counting tools: the exposition format, bounded cardinality, the
option's parsing, atomic text files, and a real Prometheus server scraping ``netmon`` on
loopback while the lab makes known drops: its HTTP API answers the scenario's exact counts."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from pybpfasm.lab.netns import build, netmoncases
from pybpfasm.tools.common import metrics

CLI = [sys.executable, "-m", "pybpfasm.cli"]


@pytest.mark.unprivileged
def test_exposition_format_escapes_label_values():
    fam = metrics.Family("pybpfasm_x_total", "a test\ncounter", ("reason", "ifname"))
    fam.add(("A\"B", "e\\0\n"), 2)
    fam.add(("A\"B", "e\\0\n"))
    gauge = metrics.Family("pybpfasm_up", "up", kind="gauge")
    gauge.add((), 1.5)
    assert metrics.exposition([fam, gauge]) == (
        "# HELP pybpfasm_x_total a test counter\n# TYPE pybpfasm_x_total counter\n"
        'pybpfasm_x_total{reason="A\\"B",ifname="e\\\\0\\n"} 3\n'
        "# HELP pybpfasm_up up\n# TYPE pybpfasm_up gauge\npybpfasm_up 1.5\n")


@pytest.mark.unprivileged
def test_bounded_cardinality_is_sticky_top_n_plus_other():
    bounded = metrics.Bounded(2)
    assert bounded.fold({("a",): 1, ("b",): 5, ("c",): 3}) == {("b",): 5, ("c",): 3, ("other",): 1}
    # a label set once shown keeps its series even when others grow past it: counters stay monotonic
    assert bounded.fold({("a",): 9, ("b",): 5, ("c",): 3, ("d",): 7}) == {("b",): 5, ("c",): 3, ("other",): 16}


@pytest.mark.unprivileged
@pytest.mark.parametrize("text, parsed", [("127.0.0.1:9435", ("127.0.0.1", 9435)), (":80", ("127.0.0.1", 80)),
                                          ("[::1]:9000", ("::1", 9000))])
def test_listen_address(text, parsed):
    assert metrics.listen_address(text) == parsed


@pytest.mark.unprivileged
@pytest.mark.parametrize("text", ["9435", "host:9435", "127.0.0.1:0", "127.0.0.1:65536", "1.2.3.4:٩"])
def test_bad_listen_address(text):
    with pytest.raises(argparse.ArgumentTypeError):
        metrics.listen_address(text)


@pytest.mark.unprivileged
def test_textfile_is_replaced_atomically(tmp_path):
    path = tmp_path / "netmon.prom"
    metrics.write_textfile(str(path), "a 1\n")
    inode = path.stat().st_ino
    metrics.write_textfile(str(path), "a 2\n")
    assert path.read_text() == "a 2\n" and path.stat().st_ino != inode  # a rename, not a rewrite
    assert os.listdir(tmp_path) == ["netmon.prom"]


@pytest.mark.unprivileged
@pytest.mark.parametrize("args", [["--prometheus", "nowhere"], ["--textfile", "/no/such/dir/x.prom"]])
def test_bad_metrics_options_are_one_line(args):
    proc = subprocess.run([*CLI, "netmon", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as reply:
        answer = json.load(reply)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@pytest.fixture
def prometheus(tmp_path):
    """A Prometheus server on loopback scraping one target every second: (its port, the target's port)."""
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian's prometheus package, test-only)")
    port, target = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                      f"  - job_name: netmon\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n")
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "prometheus did not start"
                time.sleep(0.2)
        yield port, target
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


SCENARIOS = ("netmon-udp4-closed-port", "netmon-tcp4-reset", "netmon-udp6-nft-drop", "netmon-arp-unknown-op")


def test_prometheus_scrapes_netmon_and_answers_the_scenarios_exact_counts(prometheus, tool, tmp_path):
    """netmon -s reason with --prometheus and --textfile; Prometheus (scrape interval 1 s) then
    holds exactly the lab's drops: 3 UDP + 4 TCP resets NO_SOCKET on srv1, 2 NETFILTER_DROP on
    srv2, 2 ARP NOT_SPECIFIED on srv1, by reason, location, key and pkt_type."""
    port, target = prometheus
    declared = netmoncases.load()
    chosen = [s for s in declared.scenarios if s.name in SCENARIOS]
    textfile = tmp_path / "netmon.prom"
    with build.built(declared.topology):
        time.sleep(3.0)  # the new links' own multicast chatter is over
        inodes = {ns.local: build.inode(ns.full) for ns in declared.topology.namespaces.values()}
        srv = str(inodes["pnmsrv"])
        mon = tool("netmon", "-s", "reason", "-r", "0.5", "--json", "--prometheus", f"127.0.0.1:{target}",
                   "--textfile", str(textfile), *netmoncases.netns_args(inodes))
        for sc in chosen:
            sc.sender.send()
        want = {("NO_SOCKET", "srv1"): 7, ("NETFILTER_DROP", "srv2"): 2, ("NOT_SPECIFIED", "srv1"): 2}
        deadline = time.monotonic() + 30
        while True:
            got = {(r["metric"]["reason"], r["metric"]["ifname"]): int(r["value"][1])
                   for r in _query(port, f'pybpfasm_drops_total{{netns="{srv}"}}')}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert got == want
        assert sum(int(r["value"][1]) for r in _query(port, "pybpfasm_drops_total")) == 11
        locations = {r["metric"]["location"]: int(r["value"][1]) for r in _query(port, "pybpfasm_drop_locations_total")}
        assert locations == {"__udp4_lib_rcv": 3, "tcp_v4_rcv": 4, "nft_do_chain": 2, "arp_process": 2}
        keys = {r["metric"]["key"]: int(r["value"][1]) for r in _query(port, 'pybpfasm_drops_by_key_total{sort="reason"}')}
        assert keys == {"NO_SOCKET": 7, "NETFILTER_DROP": 2, "NOT_SPECIFIED": 2}
        kinds = {r["metric"]["pkt_type"]: int(r["value"][1]) for r in _query(port, "pybpfasm_drops_by_pkt_type_total")}
        assert kinds["this-host"] == 11 and sum(kinds.values()) == 11
        assert [int(r["value"][1]) for r in _query(port, "sum(pybpfasm_lost_events_total)")] == [0]
        tables = mon.events()
    # the tables say the same
    assert sum(t["total"] for t in tables) == 11
    by_reason: dict[str, int] = {}
    for t in tables:
        for reason, n in t["reasons"].items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    assert by_reason == {"NO_SOCKET": 7, "NETFILTER_DROP": 2, "NOT_SPECIFIED": 2}
    text = textfile.read_text()
    assert f'pybpfasm_drops_total{{reason="NETFILTER_DROP",ifname="srv2",netns="{srv}"}} 2\n' in text


WORKLOAD = """
import ctypes, socket
ctypes.CDLL(None).prctl(15, b"pnmsock", 0, 0, 0)
for _ in range(4):
    socket.socket().close()
for _ in range(3):
    with socket.socket() as s:
        s.connect_ex(("127.0.0.1", 9))
"""


@pytest.mark.parametrize("name, expr, want", [
    ("sockstat", 'pybpfasm_socket_calls_total{probe="tracepoint:syscalls:sys_enter_socket"}', 7),
    ("sofamily", 'pybpfasm_socket_families_total{call="connect",comm="pnmsock",family="AF_INET"}', 3),
    ("soprotocol", 'pybpfasm_socket_protocols_total{call="connect",comm="pnmsock",protocol="IPPROTO_TCP"}', 3),
])
def test_socket_tools_write_their_counts_to_a_textfile(tool, tmp_path, name, expr, want):
    """The frame gives the counting socket tools --textfile: a process named pnmsock makes 7
    sockets and 3 TCP connects to 127.0.0.1; the file holds exactly those counts while the
    tool runs (at-exit tools included: the maps are read each second, not at exit)."""
    path = tmp_path / f"{name}.prom"
    mon = tool(name, "-c", "pnmsock", "--textfile", str(path))
    subprocess.run([sys.executable, "-c", WORKLOAD], check=True, timeout=30)
    deadline, line = time.monotonic() + 10, None
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        line = next((s for s in text.splitlines() if s.startswith(expr + " ")), None)
        if line == f"{expr} {want}":
            break
        time.sleep(0.2)
    mon.stop()
    assert line == f"{expr} {want}"


def test_dropmon_writes_drops_and_losses_to_a_textfile(tool, tmp_path):
    """dropmon --textfile on the netmon lab's server: 3 UDP datagrams to a closed port on srv1
    and 2 dropped by nft on srv2 are exactly what the file says; the frame adds its lost-events family."""
    declared = netmoncases.load()
    path = tmp_path / "dropmon.prom"
    with build.built(declared.topology):
        time.sleep(3.0)
        srv = build.inode(declared.topology.namespaces["pnmsrv"].full)
        mon = tool("dropmon", "--netns", str(srv), "--no-stack", "--textfile", str(path))
        for sc in declared.scenarios:
            if sc.name in ("netmon-udp4-closed-port", "netmon-udp6-nft-drop"):
                sc.sender.send()
        want = {f'pybpfasm_drops_total{{reason="NO_SOCKET",ifname="srv1",netns="{srv}"}} 3',
                f'pybpfasm_drops_total{{reason="NETFILTER_DROP",ifname="srv2",netns="{srv}"}} 2'}
        deadline, got = time.monotonic() + 10, set()
        while time.monotonic() < deadline:
            text = path.read_text() if path.exists() else ""
            got = {line for line in text.splitlines() if line.startswith("pybpfasm_drops_total")}
            if got == want:
                break
            time.sleep(0.2)
        mon.stop()
    assert got == want
    assert "# TYPE pybpfasm_lost_events_total counter\n" in text
