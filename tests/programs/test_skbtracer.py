"""skbtracer on the datapath topology's known packets (the demo's scenarios, exact ordered
hop lists), its stacks, counts and clocks, IPv6 and ICMP on loopback, bad input, and beside
bpftrace on the same workload."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from pybpfasm.lab.netns import build
from pybpfasm.lab.netns import datapathcases as cases
from pybpfasm.lab.netns.packets import checksum
from pybpfasm.lab.netns.scenario import Expectation
from pybpfasm.lab.workloads import datapath as work
from pybpfasm.link.netns import entered
from pybpfasm.tools.common.packet import Packet
from pybpfasm.tools.common.skbhooks import HOOKS
from pybpfasm.tools.skbtracer import pkt_info, tcp_flag_names

CLI = [sys.executable, "-m", "pybpfasm.cli", "skbtracer"]
CASE = next(c for c in cases.CASES if c.tool == "skbtracer")


@pytest.fixture
def lab(privileged):
    with build.built(cases.TOPOLOGY) as topology:
        yield {build.inode(ns.full): ns.local for ns in topology.namespaces.values()}


# -- the demo's scenarios ------------------------------------------------------------------
def test_every_scenario_gives_each_packet_its_exact_hops(privileged):
    verdicts = CASE.run([], lambda *_: None)
    assert len(verdicts) == len(cases.SKBTRACER)
    bad = [v for v in verdicts if not v.ok]
    assert not bad, [(v.scenario, v.unexpected, v.problems,
                      [(e.describe(), seen) for e, seen in v.expected if e.count != seen]) for v in bad]


def test_a_wrong_hop_list_is_a_mismatch(lab):
    """The judge can fail: the nft-dropped datagrams expected to reach the server."""
    scenario = next(s for s in cases.SKBTRACER if s.name == "skbtracer-nft-drop")
    wrong = cases.PathScenario(scenario.name, scenario.summary, scenario.traffic, scenario.args, lambda: [
        Expectation(cases.DROPPED, {"packet": cases.UDP_DROPPED, "hops": cases._hops(*cases.CL_RT, *cases.RT_SV)})])
    verdict = CASE.run_one(wrong, lab)
    assert not verdict.ok
    assert [seen for _, seen in verdict.expected] == [0] and len(verdict.unexpected) == cases.DROPPED


# -- what the original prints -----------------------------------------------------------------
def test_tcp_flags_are_named_as_the_original_does():
    assert tcp_flag_names(0x12) == "ACK,SYN"
    assert tcp_flag_names(0x14) == "ACK,RST"
    assert tcp_flag_names(0xFF) == "CWR,ECE,URG,ACK,PSH,RST,SYN,FIN"


@pytest.mark.parametrize("fields, proto, expected", [
    ({"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "udp", "sport": 1, "dport": 2, "icmp_type": None},
     17, "U:10.0.0.1:1->10.0.0.2:2"),
    ({"src": "fd::1", "dst": "fd::2", "proto": "udp", "sport": 1, "dport": 2, "icmp_type": None},
     17, "U:[fd::1]:1->[fd::2]:2"),
    ({"src": "::1", "dst": "::1", "proto": "icmp6", "sport": None, "dport": None, "icmp_type": 128},
     58, "I_request:::1->::1"),
    ({"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "icmp", "sport": None, "dport": None, "icmp_type": 0},
     1, "I_reply:10.0.0.1->10.0.0.2"),
    ({"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "icmp", "sport": None, "dport": None, "icmp_type": 3},
     1, "I:10.0.0.1->10.0.0.2"),
    ({"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "gre", "sport": None, "dport": None, "icmp_type": None},
     47, "47:10.0.0.1->10.0.0.2"),
])
def test_pkt_info(fields, proto, expected):
    raw = Packet(proto=proto)
    assert pkt_info(fields, raw) == expected


def _run(*args: str, traffic=None, settle: float = 0.5) -> tuple[int, str, str]:
    """skbtracer ARGS while *traffic* runs; (status, stdout, stderr) once it is stopped."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    while not seen or "Ctrl-C to end." not in seen[-1]:
        seen.append(proc.stderr.readline())
        if not seen[-1]:
            break
    if traffic is not None and proc.poll() is None:
        traffic()
        time.sleep(settle)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out, "".join(seen) + err


def _json(out: str) -> list[dict]:
    import json

    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_dropstack_gives_each_drop_the_stack_of_nft(lab):
    """--dropstack alone traces kfree_skb only: exactly the two drops, each with the stack
    through nf_hook_slow (the forward hook) to kfree_skb."""
    code, out, err = _run("--json", "--dropstack", "-H", work.SERVER, "-P", str(work.DROP_PORT),
                          traffic=lambda: work.nft_drop(cases.PREFIX))
    assert code == 0, err
    rows = _json(out)
    assert [r["hook"] for r in rows] == ["kfree_skb"] * cases.DROPPED
    assert {r["reason"] for r in rows} == {"NETFILTER_DROP"}
    for r in rows:
        frames = [f.split("+")[0] for f in r["kstack"]]
        assert "nf_hook_slow" in frames and "ip_forward" in frames, r["kstack"]
    assert "hooks: raw_tracepoint kfree_skb\n" in err


def test_callstack_catch_count_and_timestamps(lab):
    """-c 3 prints three lines and exits by itself; --callstack gives each a stack; -t counts
    seconds from the first line."""
    proc = subprocess.Popen([*CLI, "-c", "3", "--callstack", "-t", "-H", work.B2], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while "Ctrl-C to end." not in proc.stderr.readline():
        assert proc.poll() is None, proc.stderr.read()
    work.bridged_udp(cases.PREFIX)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["time", "NETWORK_NS", "CPU", "INTERFACE", "DEST_MAC", "IP_LEN", "PKT_INFO",
                                "TRACE_INFO"]
    events = [line for line in lines[1:] if line.startswith("[")]
    assert len(events) == 3
    assert events[0].startswith("[0.000000]")
    assert [e.split()[-1].split(":")[-1] for e in events] == ["net_dev_queue", "net_dev_start_xmit", "netif_rx"]
    stacks = [line for line in lines[1:] if line.startswith("    ")]
    assert len(stacks) >= 3 and "b'" not in out  # names are text, not bytes (the original's bug)


def _echo(netns: str, family: int, dst: str, ident: int) -> None:
    """One ICMP(v6) echo request from a raw socket (the kernel answers it)."""
    with entered(netns):
        s = socket.socket(family, socket.SOCK_RAW,
                          socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP)
    try:
        kind = 128 if family == socket.AF_INET6 else 8
        body = struct.pack("!BBHHH", kind, 0, 0, ident, 1) + b"pdt"
        if family == socket.AF_INET:  # ICMPv6: the kernel fills the checksum in
            body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
        s.sendto(body, (dst, 0))
        s.settimeout(2)
        s.recv(256)
    finally:
        s.close()


@pytest.mark.parametrize("family, address, echo", [(socket.AF_INET, "127.0.0.1", "I_request:127.0.0.1->127.0.0.1"),
                                                      (socket.AF_INET6, "::1", "I_request:::1->::1")])
def test_icmp_echo_by_id_on_loopback(make_netns, privileged, family, address, echo):
    """--proto icmp --icmpid N: the echo of id N and its reply, IPv4 and IPv6 (the original
    named only IPv4 echoes), not the echo of another id, in a namespace of our own.

    Four skbs, in this order (6.18): the request (the five loopback hooks, then consumed once
    the reply is built), the reply (five hooks, then freed with NO_SOCKET: no socket wants an
    echo reply), the raw socket's clone of the request (consumed by its recv) and its clone of
    the reply (never read: purged when the socket closes, QUEUE_PURGE)."""
    ns = make_netns()

    def traffic():
        _echo(ns.name, family, address, 0x4321)
        _echo(ns.name, family, address, 0x1234)

    code, out, err = _run("--json", "--proto", "icmp", "--icmpid", str(0x1234), "--filter-netns",
                          f"inode:{ns.inum}", traffic=traffic)
    assert code == 0, err
    rows = _json(out)
    assert {r["icmp_id"] for r in rows} == {0x1234}
    reply = echo.replace("request", "reply")
    hooks = ["net_dev_queue", "net_dev_start_xmit", "netif_rx", "net_dev_xmit", "netif_receive_skb"]
    skbs = [(p["packet"], [h.split("@")[0] for h in p["hops"].split(" > ")])
            for p in cases.packets(rows, {}, lambda r: (r["pkt_info"], r["hook"]))]
    assert skbs == [(echo, [*hooks, "consume_skb"]), (reply, [*hooks, "kfree_skb"]),
                    (echo, ["consume_skb"]), (reply, ["kfree_skb"])]
    assert [r["reason"] for r in rows if r["hook"] == "kfree_skb"] == ["NO_SOCKET", "QUEUE_PURGE"]


@pytest.mark.parametrize("args, message", [
    (["--icmpid", "5"], "--icmpid needs --proto icmp"),
    (["--filter", "tcp and"], "column 8"),
    (["--filter-netns", "/nonexistent/pdt"], "No such file"),
    (["--filter-netns", "inode:x"], "not a valid network namespace inode"),
    (["-N", "5", "--filter-netns", "inode:6"], "two different network namespaces"),
    (["--filter-mark", "0x1g"], "not a valid mark"),
    (["--proto", "sctp"], "invalid choice"),
])
def test_bad_input_is_one_line(args, message):
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr


# -- beside bpftrace ----------------------------------------------------------------------------
BPFTRACE = """{probes}
/((struct sk_buff *)args->skbaddr)->dev != 0 && ((struct sk_buff *)args->skbaddr)->dev->nd_net.net->ns.inum == {inum}/
{{ printf("%s %llx %s\\n", probe, args->skbaddr, ((struct sk_buff *)args->skbaddr)->dev->name); }}
"""


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_beside_bpftrace_in_the_router(lab, tmp_path):
    """The same eight tracepoints in bpftrace, filtered to skbs whose device is in the router's
    namespace, during the routed handshake: the same (hook, skb, device) lines in the same
    order.  The one difference: skbtracer reports only IP packets (the lab sends no others) and
    also finds the namespace of a device-less skb through its socket (none here)."""
    inum = next(i for i, local in lab.items() if local == "rt")
    category = {h.event: h.category for h in HOOKS}
    probes = ",".join(f"tracepoint:{h.category}:{h.event}" for h in HOOKS)
    script = tmp_path / "peer.bt"
    script.write_text(BPFTRACE.format(probes=probes, inum=inum))
    out = tmp_path / "peer.out"
    peer = subprocess.Popen(["bpftrace", "-o", str(out), str(script)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "BPFTRACE_PERF_RB_PAGES": "1024"})
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and "Attaching" in out.read_text()):
            assert time.monotonic() < deadline and peer.poll() is None, "bpftrace did not attach"
            time.sleep(0.1)
        time.sleep(0.5)  # "Attaching N probes" comes before the last attach
        code, mine, err = _run("--json", "--filter-netns", f"inode:{inum}",
                               traffic=lambda: work.tcp_handshake(cases.PREFIX))
    finally:
        peer.send_signal(signal.SIGINT)
        try:
            peer.wait(20)
        finally:
            peer.kill()
    assert code == 0, err
    theirs = [line.split() for line in out.read_text().splitlines() if line.startswith("tracepoint:")]
    ours = [[f"tracepoint:{category[r['hook']]}:{r['hook']}", r["skb"], r["ifname"]] for r in _json(mine)]
    assert ours == [[p, skb.lstrip("0"), dev] for p, skb, dev in theirs]
    assert len(ours) == 4 * 5  # four packets, each the router's half of two hand-offs
