"""``pybpfasm defrag`` on the local kernel: the fragment scenarios of lab/scenarios/defrag.toml
(exact lines, exact kernel counter deltas, counters derived from the tool's own lines), its
filters, ``-i`` memory lines, its JSON contract and its one-line errors, and bpftrace as a
peer on the same hooks."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from typing import Any, Iterator

import pytest

from pybpfasm.lab.netns import build, defragcases
from pybpfasm.link.netns import entered

CASE = defragcases.CASES[0]
NAMES = [s.name for s in CASE.scenarios()]
EVENT_KEYS = {"time", "event", "netns", "src", "dst", "id", "proto", "offset", "len", "more",
              "reason", "user"}
SUMMARY_KEYS = {"time", "summary", "netns", "src", "dst", "id", "proto", "fragments", "bytes",
                "duration_us", "outcome", "holes"}
#: the lab client's addresses: the sources of every lab fragment
SOURCES = {"10.79.0.1", "10.79.1.1", "fd79::1", "fd79:1::1"}
DROP_EVENTS = {"duplicate", "overlap", "too_far", "timeout", "evicted", "dropped"}

#: bpftrace on the tool's two tracepoints, printing each lab fragment that arrives or is
#: dropped (lab addresses: 10.79.0.0/16 and fd79::/16; a queued fragment has no device)
BODY = r"""
  $skb = (struct sk_buff *)args->skbaddr;
  $nh = $skb->head + $skb->network_header;
  $ns = $skb->dev != 0 ? $skb->dev->nd_net.net->ns.inum : 0;
  if ((*(uint8 *)$nh >> 4) == 4) {
    $ip = (struct iphdr *)$nh;
    $rawfrag = (uint64)$ip->frag_off;
    $frag = (($rawfrag & 0xff) << 8) | ($rawfrag >> 8);
    if (($ip->saddr & 0xffff) == 0x4f0a && ($frag & 0x3fff) != 0) {
      printf("%u %s %d %d 4 %d %d %d %d\n", $ns, ntop($ip->saddr), DROP, REASON, (($ip->id & 0xff) << 8) | ($ip->id >> 8),
             ($frag & 0x1fff) * 8, ((($ip->tot_len & 0xff) << 8) | ($ip->tot_len >> 8)) - $ip->ihl * 4,
             ($frag >> 13) & 1);
    }
  } else {
    $ip6 = (struct ipv6hdr *)$nh;
    if ($ip6->saddr.in6_u.u6_addr8[0] == 0xfd && $ip6->saddr.in6_u.u6_addr8[1] == 0x79 && $ip6->nexthdr == 44) {
      $raw = (uint64)*(uint16 *)($nh + 42);
      $fo = (($raw & 0xff) << 8) | ($raw >> 8);
      $id = *(uint32 *)($nh + 44);
      $pl = (($ip6->payload_len & 0xff) << 8) | ($ip6->payload_len >> 8);
      printf("%u %s %d %d 6 %u %d %d %d\n", $ns, ntop($ip6->saddr.in6_u.u6_addr8), DROP, REASON,
             (($id & 0xff) << 24) | ((($id >> 8) & 0xff) << 16) | ((($id >> 16) & 0xff) << 8) | ($id >> 24),
             $fo & 0xfff8, $pl - 8, $fo & 1);
    }
  }
"""
TWIN = ("tracepoint:net:netif_receive_skb {" + BODY.replace("DROP", "0").replace("REASON", "-1") + "}\n"
        "tracepoint:skb:kfree_skb {" + BODY.replace("DROP", "1").replace("REASON", "args->reason") + "}\n")


class Twin:
    """The bpftrace twin, started before the scenarios and stopped after them."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["bpftrace", "-e", TWIN], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._stderr, daemon=True).start()
        threading.Thread(target=self._stdout, daemon=True).start()
        if not self.ready.wait(60):
            self.stop()
            raise AssertionError("bpftrace did not attach")

    def _stderr(self) -> None:
        for _ in self.proc.stderr:  # 0.17's harmless RLIMIT_MEMLOCK complaint, or an error
            pass
        self.ready.set()

    def _stdout(self) -> None:
        for line in self.proc.stdout:  # "Attaching 2 probes..." comes on stdout
            if line.startswith("Attaching"):
                self.ready.set()
            elif line[:1].isdigit() and len(line.split()) == 9:
                self.lines.append(line.strip())
        self.ready.set()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # 0.17 ignores SIGTERM for a long time
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def ran(privileged) -> Iterator[tuple[dict, list, list | None]]:
    """Every scenario once: the verdicts by name, the tool's lab lines, bpftrace's lines."""
    twin = Twin() if shutil.which("bpftrace") else None
    lines: list[dict[str, Any]] = []
    try:
        verdicts = CASE.run([], lambda s, v: None, lines)
    finally:
        if twin is not None:
            time.sleep(0.5)
            twin.stop()
    yield {v.scenario: v for v in verdicts}, lines, twin.lines if twin else None


@pytest.mark.parametrize("name", NAMES)
def test_scenario(ran, name):
    verdict = ran[0][name]
    wrong = [f"want {e.count} got {n}: {e.describe()}" for e, n in verdict.expected if e.count != n]
    assert verdict.ok, "\n".join([*wrong, *map(str, verdict.unexpected), *verdict.problems])


def test_json_lines_have_exactly_the_issues_keys(ran):
    lines = ran[1]
    assert {frozenset(ln) for ln in lines} == {frozenset(EVENT_KEYS), frozenset(SUMMARY_KEYS)}


def test_bpftrace_sees_the_same_fragments_and_drops(ran):
    """bpftrace 0.17 on the same two tracepoints sees the same lab fragments and the same
    drops with the same reasons, line for line.  What it cannot give: reassembled datagrams
    (no netfilter programs in bpftrace), the namespace of a queued fragment freed without a
    device (the tool takes it from the fragment's arrival), and the names of the tool's drop
    events (duplicate, overlap...), which are the tool's reading of reason and function.
    bpftrace's lines are kept to the lab client's sources in the lab's namespaces (or none, for
    a queued fragment): other tests on this machine send fragments of their own.  (0.17 gets a
    byte swap of a ``uint16`` wrong unless it is widened to 64 bits first, hence the casts.)"""
    twin = ran[2]
    if twin is None:
        pytest.skip("bpftrace is not installed")
    from pybpfasm.btf import BTF

    reasons = {v: k.removeprefix("SKB_DROP_REASON_")
               for k, v in BTF.kernel().enum("skb_drop_reason").items()}
    lab = {ln["netns"] for ln in ran[1]}
    theirs = Counter()
    for line in twin:
        netns, src, *numbers = line.split()
        if src not in SOURCES or int(netns) not in lab | {0}:
            continue  # someone else's packets in a namespace of their own
        drop, reason, family, ident, offset, length, more = (int(x) for x in numbers)
        theirs[("drop" if drop else "fragment", reasons.get(reason), family, ident, offset,
                length, bool(more))] += 1
    ours = Counter()
    for ln in ran[1]:
        if ln.get("event") == "fragment" or ln.get("event") in DROP_EVENTS:
            kind = "fragment" if ln["event"] == "fragment" else "drop"
            ours[(kind, ln["reason"], 6 if ":" in ln["src"] else 4, ln["id"], ln["offset"],
                  ln["len"], ln["more"])] += 1
    assert ours == theirs, (sorted((ours - theirs).items()), sorted((theirs - ours).items()))


# -- filters, memory, errors --------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(privileged) -> Iterator[dict[str, int]]:
    with build.built(CASE.declared.topology) as topo:
        yield {ns.local: build.inode(ns.full) for ns in topo.namespaces.values()}


def _send(*names: str) -> None:
    for s in CASE.scenarios():
        if s.name in names:
            s.sender.send()


def _lines(mon) -> list[dict]:
    return [ln for ln in mon.events()]


def test_filters_leave_out_every_other_fragment(tool, lab):
    """--src, --id, --proto and --netns together: only the duplicate train's lines."""
    mon = tool("defrag", "--json", "--netns", str(lab["pdfsrv"]), "--src", "10.79.0.1",
               "--id", "7903", "--proto", "udp")
    _send("defrag4-in-order", "defrag4-duplicate", "defrag6-duplicate", "defrag4-conntrack-forward")
    time.sleep(0.5)
    got = Counter(ln["event"] for ln in _lines(mon))
    assert got == {"fragment": 3, "duplicate": 1, "reassembled": 1}


def test_dst_filter_and_the_v6_conntrack_id(tool, lab):
    mon = tool("defrag", "--json", "--dst", "fd79:2::2", "--summary")
    _send("defrag4-conntrack-forward", "defrag6-conntrack-forward", "defrag6-in-order")
    time.sleep(0.5)
    got = sorted((ln["netns"], ln["id"], ln["outcome"]) for ln in _lines(mon))
    assert [g[:1] + g[2:] for g in got] == sorted([(lab["pdfrtr"], "reassembled"),
                                                   (lab["pdfsrv"], "reassembled")])
    assert 7811 in {g[1] for g in got}  # conntrack's datagram has its ID back from the fragments


def test_memory_lines_are_the_kernels_own(tool, lab):
    """-i: each namespace's queues and bytes against ipfrag_high_thresh, as sockstat says."""
    path = "/run/netns/pbl-defrag-pdfsrv"
    with entered(path), open("/proc/sys/net/ipv4/ipfrag_time", "w") as f:
        f.write("30")  # the queue outlives a slow start of the tool
    try:
        _send("defrag4-missing-last")
        with entered(path), open("/proc/thread-self/net/sockstat") as f:
            frag = next(ln for ln in f if ln.startswith("FRAG:")).split()
        mon = tool("defrag", "--json", "--netns", str(lab["pdfsrv"]), "-i", "0.2")
        time.sleep(0.5)
        rows = [ln for ln in _lines(mon) if ln.get("memory")]
    finally:
        with entered(path), open("/proc/sys/net/ipv4/ipfrag_time", "w") as f:
            f.write("1")
    v4 = [r for r in rows if r["family"] == "ipv4"]
    assert v4 and {(r["netns"], r["queues"], r["bytes"], r["high_thresh"]) for r in v4} == {
        (lab["pdfsrv"], int(frag[2]), int(frag[4]), 4194304)}
    assert int(frag[2]) == 1 and {r["family"] for r in rows} == {"ipv4", "ipv6"}


@pytest.mark.parametrize("args, message", [
    (["--netns", "1"], "--netns: no network namespace with inode 1"),
    (["--proto", "nope"], "'nope' is not a valid protocol"),
    (["--id", "4294967296"], "IP ID 4294967296 is out of range"),
    (["--src", "10.0.0.300"], "is not an IPv4 or IPv6 address"),
    (["--buffer", "perf"], "--buffer perf: netfilter programs"),
])
def test_bad_input_is_one_line(args, message):
    import sys

    proc = subprocess.run([sys.executable, "-m", "pybpfasm.cli", "defrag", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_text_lines(tool, lab):
    mon = tool("defrag", "--netns", str(lab["pdfsrv"]), "--id", "7903")
    _send("defrag4-duplicate")
    time.sleep(0.5)
    code, out, err = mon.stop()
    assert code == 0, err
    words = [line.split()[1] for line in out.splitlines()]
    assert words == ["fragment", "fragment", "duplicate", "fragment", "reassembled"]
    assert "reason=DUP_FRAG" in out.splitlines()[2] and "user=local" in out.splitlines()[4]


def test_the_stderr_line_says_what_this_kernel_cannot_give(tool, lab):
    mon = tool("defrag", "--netns", str(lab["pdfsrv"]))
    _, _, err = mon.stop()
    assert "note: no function hooks here: overlap means" in err
    assert json  # noqa: the module imports json for the fixtures' readers
