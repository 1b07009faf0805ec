"""pkt-tracer in a kernel with kprobes and fentry (the VM lab's Debian guests):
``pybpfasm lab vm run --kernel 6.1 -- python3 -m pytest tests/kernel/test_datapath_functions.py``.

On the datapath topology's known packets, with kprobes+kretprobes and with fentry+fexit, each
packet's exact list of function calls (in call order) and ``-o``'s exactly one tree per
packet.  The lists are the kernel's code path (6.1, measured): a forwarded TCP segment is
sent by the client (LOCAL_OUT hook, ip_output ... dev_hard_start_xmit), received and
forwarded by the router (ip_rcv, its PRE_ROUTING hook, ip_forward, FORWARD and POST_ROUTING
hooks, the transmit) and delivered by the server (PRE_ROUTING, ip_local_deliver, LOCAL_IN,
tcp_v4_rcv).  A function the kernel lacks or inlined is named on stderr and left out of the
expected list; a module's functions (the bridge's) are traced with kprobes only.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest

from pybpfasm.lab.netns import build
from pybpfasm.lab.netns import datapathcases as cases
from pybpfasm.lab.netns.scenario import kernel_series
from pybpfasm.lab.workloads import datapath as work
from pybpfasm.tools.common.fnhooks import kinds_available

SEND = ["nf_hook_slow", "ip_output", "nf_hook_slow", "ip_finish_output", "ip_finish_output2",
        "__dev_queue_xmit", "dev_hard_start_xmit"]
RECEIVE = ["__netif_receive_skb", "ip_rcv", "ip_rcv_core", "nf_hook_slow"]
FORWARD = ["ip_forward", "nf_hook_slow", "ip_forward_finish", *SEND[1:]]
DELIVER = ["ip_local_deliver", "nf_hook_slow", "tcp_v4_rcv"]
#: a forwarded TCP segment, client -> router -> server
ROUTED = [*SEND, *RECEIVE, *FORWARD, *RECEIVE, *DELIVER]
ROUTED_FUNCTIONS = [*sorted(set(ROUTED)), "pdt_no_such_function"]
#: where the call list was measured with every netfilter hook (6.12 calls nf_hook_slow only
#: in some namespaces: 4 of its 7 calls fewer, the other 20 calls the same)
HOOKS_MEASURED = (6, 1)
#: a datagram flooded by the bridge to its one other port (b2's address is never learnt)
BRIDGED = ["__dev_queue_xmit", "__netif_receive_skb", "br_handle_frame", "br_handle_frame_finish", "br_flood",
           "__br_forward", "br_forward_finish", "br_dev_queue_push_xmit", "__dev_queue_xmit", "__netif_receive_skb"]
NOT_TRACED = re.compile(r"note: not traced: (.*)")


@pytest.fixture(scope="module")
def lab():
    with build.built(cases.TOPOLOGY) as topology:
        yield topology


def _available(hook: str) -> None:
    why = kinds_available()[hook]
    if why is not None:
        pytest.skip(f"{hook}: {why}")


def _trace(tmp_path, hook: str, functions: list[str], args: list[str], traffic) -> tuple[list[dict], set[str]]:
    """pkt-tracer -o --json with *functions* during *traffic*: its trees and the functions it
    said it could not trace."""
    listing = tmp_path / "functions"
    listing.write_text("".join(f"{f}\n" for f in functions))
    proc = subprocess.Popen([sys.executable, "-m", "pybpfasm.cli", "pkt-tracer", "--json", "-o", "-r",
                             "--hook", hook, "-f", str(listing), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    while not seen or "Ctrl-C to end." not in seen[-1]:
        seen.append(proc.stderr.readline())
        assert seen[-1], "".join(seen) + proc.stderr.read()
    try:
        traffic()
    finally:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, "".join(seen) + err
    skipped = set()
    for line in seen:
        match = NOT_TRACED.match(line)
        if match:
            skipped = {part.split(":")[0].strip() for part in match[1].split(";")}
    return [json.loads(line) for line in out.splitlines()], skipped


def _calls(calls: list[dict]) -> list[str]:
    """Every call of a tree, in the order they were made."""
    out = []
    for c in calls:
        out += [c["func"], *_calls(c["calls"])]
    return out


def _durations_nest(calls: list[dict]) -> bool:
    return all(c["duration_ns"] is not None and sum(k["duration_ns"] for k in c["calls"]) <= c["duration_ns"]
               and _durations_nest(c["calls"]) for c in calls)


@pytest.mark.parametrize("hook", ["kprobe", "fentry"])
def test_each_routed_packet_is_one_tree_of_its_exact_calls(lab, tmp_path, hook):
    """The handshake and reset under -a dest=SERVER dport=7001: the SYN, the ACK and the RST
    (the SYN-ACK goes the other way), one tree each, every call of each in order; durations
    nest; with -r every call has a return value and the client's first hook accepted (1)."""
    _available(hook)
    trees, skipped = _trace(tmp_path, hook, ROUTED_FUNCTIONS, ["-a", f"dest={work.SERVER}", f"dport={work.TCP_PORT}"],
                            lambda: work.tcp_handshake(cases.PREFIX))
    assert "pdt_no_such_function" in skipped
    expected = [f for f in ROUTED if f not in skipped]
    exact = kernel_series() == HOOKS_MEASURED
    assert [t["tcp_flags"] for t in trees] == ["S", ".", "R."]
    for tree in trees:
        assert (tree["src"], tree["dst"], tree["sport"], tree["dport"]) == (
            work.CLIENT, work.SERVER, work.TCP_SPORT, work.TCP_PORT)
        calls = _calls(tree["calls"])
        if not exact:  # the same calls but the netfilter hooks', which differ by kernel
            calls, expected = ([f for f in c if f != "nf_hook_slow"] for c in (calls, expected))
        assert calls == expected, tree["tcp_flags"]
        assert _durations_nest(tree["calls"])
        assert tree["calls"][0]["func"] != "nf_hook_slow" or tree["calls"][0]["ret"] == 1


def test_bridged_datagrams_through_the_bridge_module(lab, tmp_path):
    """The bridge's functions are a module's (their BTF is the module's; kprobes): each
    bridged datagram is one tree, b1's transmit, the bridge's receive, flood and forward, b2's
    receive.  br_handle_frame takes the skb by reference (struct sk_buff **)."""
    _available("kprobe")
    trees, skipped = _trace(tmp_path, "kprobe", sorted(set(BRIDGED)), ["-a", f"dest={work.B2}"],
                            lambda: work.bridged_udp(cases.PREFIX))
    expected = [f for f in BRIDGED if f not in skipped]
    assert "br_handle_frame" in expected
    assert len(trees) == cases.BRIDGED
    assert [_calls(t["calls"]) for t in trees] == [expected] * cases.BRIDGED
