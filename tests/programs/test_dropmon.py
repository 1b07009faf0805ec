"""The drop monitor against drops the tests cause themselves, in their own namespaces."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfasm.link.netns import entered
from tests.link.kernel_state import programs_named, settle

PROG = "on_kfree_skb"


def send(netns: str, family: int, kind: int, address: str, port: int, count: int) -> None:
    """UDP datagrams or TCP connection attempts to a closed port, from inside *netns*."""
    for _ in range(count if kind == socket.SOCK_STREAM else 1):
        with entered(netns):
            sock = socket.socket(family, kind)
        with sock:
            if kind == socket.SOCK_STREAM:
                with pytest.raises(ConnectionRefusedError):
                    sock.connect((address, port))
            else:
                for j in range(count):
                    sock.sendto(bytes([j & 0xFF]), (address, port))


@pytest.mark.parametrize("buffer", ["ringbuf", "perf"])
def test_every_drop_with_its_fields(tool, make_netns, buffer):
    ns = make_netns()
    mon = tool("dropmon", "--json", "--netns", str(ns.inum), "--count", "5", "--buffer", buffer)
    send(ns.name, socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 9, 5)
    code, out, err = mon.finish()
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(events) == 5, err
    for ev in events:
        assert set(ev) == {"time", "pid", "comm", "src", "dst", "ip_id", "vlan", "proto", "sport",
                           "dport", "icmp_type", "icmp_code", "ifname", "reason", "location",
                           "netns", "kstack", "ustack"}
        assert (ev["src"], ev["dst"], ev["proto"], ev["dport"]) == ("127.0.0.1", "127.0.0.1", "udp", 9)
        assert (ev["reason"], ev["ifname"], ev["netns"]) == ("NO_SOCKET", "lo", ns.inum)
        assert ev["location"].startswith("__udp4_lib_rcv+0x")
        assert ev["vlan"] is None and ev["icmp_type"] is None and ev["ustack"] is None
        assert isinstance(ev["ip_id"], int) and ev["kstack"] and ev["comm"].startswith("python")
    assert len({ev["ip_id"] for ev in events}) == 5


MIXED = [  # (family, kind, address, port, count)
    (socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 9, 3),
    (socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 10, 2),
    (socket.AF_INET6, socket.SOCK_DGRAM, "::1", 9, 2),
    (socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", 11, 2),
    (socket.AF_INET6, socket.SOCK_STREAM, "::1", 12, 1),
]


def _key(ev: dict) -> tuple:
    return (ev["src"], ev["dst"], ev["proto"], ev["sport"], ev["dport"])


def _matches(ev: dict, args: list[str]) -> bool:
    """The original tool's filter semantics, in Python."""
    opts = dict(zip(args[::2], args[1::2]))
    protocol = opts.get("--protocol", "all")
    if "--src" in opts and ev["src"] != str(ipaddress.ip_address(opts["--src"])):
        return False
    if "--dst" in opts and ev["dst"] != str(ipaddress.ip_address(opts["--dst"])):
        return False
    if protocol != "all" and ev["proto"] not in ({"icmp", "icmp6"} if protocol == "icmp" else {protocol}):
        return False
    if "--src-port" in opts and ev["sport"] != int(opts["--src-port"]):
        return False
    return not ("--dst-port" in opts and ev["dport"] != int(opts["--dst-port"]))


FILTERS = [
    ["--protocol", "udp"],
    ["--protocol", "tcp"],
    ["--protocol", "icmp"],
    ["--dst-port", "9"],
    ["--protocol", "udp", "--dst-port", "10"],
    ["--dst", "::1"],
    ["--src", "127.0.0.1", "--protocol", "tcp"],
    ["--src", "127.0.0.1", "--dst", "127.0.0.1", "--dst-port", "11"],
    ["--reason", "NO_SOCKET", "--dst", "::1", "--protocol", "udp"],
]


def test_filters_give_exactly_the_matching_subset(tool, make_netns):
    ns = make_netns()
    total = sum(c for *_, c in MIXED)
    everything = tool("dropmon", "--json", "--no-stack", "--netns", str(ns.inum))
    filtered = [(args, tool("dropmon", "--json", "--no-stack", "--netns", str(ns.inum), *args))
                for args in FILTERS]
    for family, kind, address, port, count in MIXED:
        send(ns.name, family, kind, address, port, count)
    settle(lambda: None, 0, timeout=0.5)
    seen = everything.events()
    assert len(seen) == total, seen
    assert {ev["proto"] for ev in seen} == {"udp", "tcp"}
    for args, mon in filtered:  # every drop here is NO_SOCKET, so --reason NO_SOCKET keeps all
        rest = args[2:] if args[0] == "--reason" else args
        want = sorted(_key(ev) for ev in seen if _matches(ev, rest))
        got = sorted(_key(ev) for ev in mon.events())
        assert got == want, args


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_leftovers_after_any_exit(tool, sig):
    """This monitor's programs and maps go with it (another monitor may be running)."""
    before = _ids(programs_named(PROG))
    mon = tool("dropmon", "--json")
    ours = _ids(programs_named(PROG)) - before
    assert ours, "the monitor's program is not loaded while it runs"
    maps = {m for p in programs_named(PROG) if p["id"] in ours for m in p.get("map_ids", [])}
    code, _, err = mon.stop(sig)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0), err
    assert "Traceback" not in err
    assert settle(lambda: _ids(programs_named(PROG)) & ours, set()) == set()
    assert settle(lambda: maps & _map_ids(), set()) == set()


def _ids(progs: list) -> set[int]:
    return {p["id"] for p in progs}


def _map_ids() -> set[int]:
    return {m["id"] for m in json.loads(_maps() or "[]")}


def _maps() -> str:
    return subprocess.run(["bpftool", "-j", "map", "list"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("args,message", [
    (["--src", "10.0.0.256"], "is not an IPv4 or IPv6 address"),
    (["--dst-port", "70000"], "port 70000 is out of range"),
    (["--src-port", "http"], "is not a valid port"),
    (["--reason", "NOT_A_REASON"], "unknown drop reason 'NOT_A_REASON'"),
    (["--protocol", "sctp"], "invalid choice: 'sctp'"),
    (["--ifname", "a-name-far-too-long"], "is not an interface name"),
    (["--count", "0"], "count 0 is out of range"),
    (["--btf", "/nonexistent"], "--btf: cannot read BTF file /nonexistent"),
])
def test_bad_flags_one_line_exit_2(args, message):
    proc = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "dropmon", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_count_and_duration_end_the_run(tool, make_netns):
    ns = make_netns()
    mon = tool("dropmon", "--json", "--netns", str(ns.inum), "--duration", "1")
    code, out, err = mon.finish()
    assert code == 0 and out == "", err


def _udp_no_ports(netns: str) -> int:
    """The namespace's count of UDP datagrams dropped for want of a socket."""
    lines = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    head, values = (line.split() for line in lines if line.startswith("Udp:"))
    return int(values[head.index("NoPorts")])


@pytest.mark.parametrize("buffer", ["ringbuf", "perf"])
def test_every_drop_is_reported_or_counted_lost(tool, make_netns, buffer):
    """A reader that falls behind (stopped here) loses records; the lost count makes the sum exact."""
    ns = make_netns()
    flood = 20_000  # far more than the 1 MiB ring (or 2 x 256 KiB of perf buffers) holds
    mon = tool("dropmon", "--json", "--no-stack", "--netns", str(ns.inum), "--buffer", buffer)
    before = _udp_no_ports(ns.name)
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # every drop on one CPU, so on one perf ring
    mon.proc.send_signal(signal.SIGSTOP)
    try:
        send(ns.name, socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 9, flood)
        mon.proc.send_signal(signal.SIGCONT)
        settle(lambda: None, 0, timeout=0.5)
        # a perf ring reports its losses (PERF_RECORD_LOST) with its next sample that fits
        send(ns.name, socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 9, 1)
    finally:
        mon.proc.send_signal(signal.SIGCONT)
        os.sched_setaffinity(0, allowed)
    flood += 1
    assert _udp_no_ports(ns.name) - before == flood
    settle(lambda: None, 0, timeout=1.0)
    code, out, err = mon.stop()
    lines = [json.loads(line) for line in out.splitlines()]
    events = [e for e in lines if "lost" not in e]
    lost = sum(e["lost"] for e in lines if "lost" in e)
    assert code == 0, err
    assert 0 < len(events) < flood and lost > 0
    assert len(events) + lost == flood
    assert f"Lost {lost} events" in err


def test_external_btf_file(tool, make_netns, tmp_path):
    """--btf FILE lays out kernel structs from a file (kernels without /sys/kernel/btf/vmlinux)."""
    external = tmp_path / "vmlinux.btf"
    external.write_bytes(Path("/sys/kernel/btf/vmlinux").read_bytes())
    ns = make_netns()
    mon = tool("dropmon", "--json", "--no-stack", "--btf", str(external), "--netns", str(ns.inum),
               "--count", "2")
    send(ns.name, socket.AF_INET6, socket.SOCK_DGRAM, "::1", 9, 2)
    code, out, err = mon.finish()
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert [(e["src"], e["dport"], e["reason"]) for e in events] == [("::1", 9, "NO_SOCKET")] * 2
