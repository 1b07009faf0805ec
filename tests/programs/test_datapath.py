"""datapath on the datapath topology's known packets: the demo's scenarios (exact ordered
hops), its text lines, the per-edge latency histograms counted in the kernel, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from pybpfasm.lab.netns import build
from pybpfasm.lab.netns import datapathcases as cases
from pybpfasm.lab.workloads import datapath as work

CLI = [sys.executable, "-m", "pybpfasm.cli", "datapath"]
CASE = next(c for c in cases.CASES if c.tool == "datapath")


@pytest.fixture
def lab(privileged):
    with build.built(cases.TOPOLOGY) as topology:
        yield topology


def _run(*args: str, traffic) -> tuple[int, str, str]:
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    while not seen or "Ctrl-C to end." not in seen[-1]:
        seen.append(proc.stderr.readline())
        assert seen[-1], "".join(seen) + proc.stderr.read()
    traffic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out, "".join(seen) + err


def test_every_scenario_gives_each_packet_its_exact_hops(privileged):
    verdicts = CASE.run([], lambda *_: None)
    assert len(verdicts) == len(cases.DATAPATH)
    bad = [v for v in verdicts if not v.ok]
    assert not bad, [(v.scenario, v.unexpected, v.problems,
                      [(e.describe(), seen) for e, seen in v.expected if e.count != seen]) for v in bad]


def test_text_lines(lab):
    """The bridged flow as text: a header, then per datagram tx, rx, bridge (from p1 to p2), rx;
    one stderr line names the hooks."""
    code, out, err = _run("--host", work.B2, traffic=lambda: work.bridged_udp(cases.PREFIX))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "HOP", "NETNS", "DEVICE", "PROTO", "PACKET", "INFO"]
    hops = [(f[1], f[3]) for f in (line.split() for line in lines[1:])]
    assert hops == [("tx", "eth0"), ("rx", "p1"), ("bridge", "p1->p2"), ("rx", "eth0")] * cases.BRIDGED
    assert all(line == line.rstrip() for line in lines)
    assert "note: hooks: raw_tracepoint net_dev_queue, raw_tracepoint netif_receive_skb, raw_tracepoint kfree_skb\n" in err


def _edges(out: str) -> dict[tuple[str, str], int]:
    rows = [json.loads(line) for line in out.splitlines()]
    for r in rows:
        assert sum(r["slots"].values()) == r["count"]
        assert all(1 <= int(s) < 40 for s in r["slots"])  # nanoseconds to half a minute
    return {(r["from"], r["to"]): r["count"] for r in rows}


def test_latency_counts_every_edge_of_every_packet(lab):
    """--latency: no lines, one histogram per edge at exit.  Each routed packet (SYN, SYN-ACK,
    ACK, RST) is queued twice and received twice: queue->receive twice (two veth hand-offs)
    and receive->queue once (the router); the SYN's consume_skb at the server ends its state
    without an edge.  Each dropped datagram: queue->receive, then receive->kfree_skb."""
    code, out, err = _run("--json", "--latency", "--host", work.SERVER,
                          traffic=lambda: (work.tcp_handshake(cases.PREFIX), work.nft_drop(cases.PREFIX)))
    assert code == 0, err
    assert _edges(out) == {("net_dev_queue", "netif_receive_skb"): 4 * 2 + cases.DROPPED,
                           ("netif_receive_skb", "net_dev_queue"): 4,
                           ("netif_receive_skb", "kfree_skb"): cases.DROPPED}
    assert "consume_skb" in err  # the hook that forgets a packet is attached with --latency


def test_latency_text_is_bcc_histograms(lab):
    code, out, err = _run("--latency", "--host", work.SERVER, "--dport", str(work.DROP_PORT),
                          traffic=lambda: work.nft_drop(cases.PREFIX))
    assert code == 0, err
    assert "edge = net_dev_queue -> netif_receive_skb" in out
    assert "edge = netif_receive_skb -> kfree_skb" in out
    assert "nsecs" in out and "distribution" in out
    rows = [line for line in out.splitlines() if "|" in line and "->" in line]
    counts = [int(line.split(":")[1].split("|")[0]) for line in rows]
    assert sum(counts) == 2 * cases.DROPPED


@pytest.mark.parametrize("args, message", [
    (["--host", "10.0.0.1", "-i", "1"], "needs --latency"),
    (["--host", "10.0.0.300"], "not an IPv4 or IPv6 address"),
    (["--host", "10.0.0.1", "--dport", "70000"], "out of range"),
    (["--host", "10.0.0.1", "--filter", "port"], "column"),
])
def test_bad_input_is_one_line(args, message):
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
