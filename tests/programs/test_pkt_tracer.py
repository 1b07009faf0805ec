"""pkt-tracer here (no kprobes, no fentry: it says so in one line): its function file, how BTF
and kallsyms decide what it traces, the per-packet call trees, its programs through this
kernel's verifier, bad input.  It traces in the VM lab (tests/kernel/test_datapath_functions.py)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from pybpfasm.dsl import Collection
from pybpfasm.errors import UsageError
from pybpfasm.tools import pkt_tracer
from pybpfasm.tools.common import fnhooks
from pybpfasm.tools.common.flowtree import FlowTrees

CLI = [sys.executable, "-m", "pybpfasm.cli", "pkt-tracer"]


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "functions"
    path.write_text(text)
    return str(path)


def test_function_file_lines_and_specs(tmp_path):
    path = _write(tmp_path, "# the receive path\nip_rcv\n\n  vr_fabric_input arg=1 head=0 network=0x20  # vrouter\n")
    assert fnhooks.read_functions(path) == [("ip_rcv", None),
                                            ("vr_fabric_input", fnhooks.ArgSpec(arg=1, head=0, network=32))]


@pytest.mark.parametrize("text, message", [
    ("ip_rcv\nip_rcv\n", "listed twice"),
    ("ip-rcv\n", "not a function name"),
    ("f arg=1 head=0\n", "lacks network"),
    ("f arg=1 head=0 network=x\n", "not a number"),
    ("f arg=9 head=0 network=0\n", "out of range"),
    ("f size=4\n", "an argument spec is"),
    ("# nothing\n", "no functions"),
])
def test_bad_function_files(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        fnhooks.read_functions(_write(tmp_path, text))


def test_btf_and_kallsyms_decide_what_is_traced():
    """The skb argument by BTF (by reference for br_handle_frame), a spec taken as given, and
    why the rest are left out."""
    spec = fnhooks.ArgSpec(2, 192, 180)
    targets = fnhooks.resolve([("ip_rcv", None), ("br_handle_frame", None), ("ip_rcv_finish", spec),
                               ("pdt_no_such_function", None), ("schedule", None)])
    assert targets.traced == (fnhooks.Target("ip_rcv", 0), fnhooks.Target("br_handle_frame", 0, True),
                              fnhooks.Target("ip_rcv_finish", 2, spec=spec))
    assert targets.skipped == {"pdt_no_such_function": "not found", "schedule": "no struct sk_buff * argument"}


def test_one_tree_per_packet_by_pointer_not_thread():
    """Calls nest per packet; a later top-level call with the same packet joins its tree; the
    pointer reused for another packet (another IP header) starts another tree; a return with
    no open call is refused."""
    trees = FlowTrees()
    a, b = ("skb1", "A"), ("skb1", "B")
    trees.entry(a, 1, "__dev_queue_xmit", 10, {"p": "A"})
    trees.entry(a, 1, "dev_hard_start_xmit", 11, {})
    trees.entry(("skb2", "C"), 2, "ip_rcv", 12, {"p": "C"})  # another packet, interleaved
    assert trees.exit(1, "dev_hard_start_xmit", 13, 0)
    assert trees.exit(1, "__dev_queue_xmit", 20, 0)
    trees.entry(a, 1, "__netif_receive_skb", 30, {})  # the same packet, later, elsewhere
    assert trees.exit(1, "__netif_receive_skb", 35, 0)
    trees.entry(b, 1, "ip_output", 40, {"p": "B"})  # the pointer, reused
    assert not trees.exit(1, "ip_rcv", 41, 0)
    flows = [f.as_dict() for f in trees.all()]
    assert [f["p"] for f in flows] == ["A", "C", "B"]
    first = flows[0]["calls"]
    assert [c["func"] for c in first] == ["__dev_queue_xmit", "__netif_receive_skb"]
    assert first[0]["duration_ns"] == 10 and first[0]["calls"][0]["func"] == "dev_hard_start_xmit"
    assert flows[1]["calls"][0]["duration_ns"] is None  # still open at exit


def _options(*argv: str) -> pkt_tracer.Options:
    parser = argparse.ArgumentParser()
    pkt_tracer.tool.configure(parser)
    args = parser.parse_args(list(argv))
    pkt_tracer.tool.args = args
    return pkt_tracer.tool.options(args)


@pytest.mark.parametrize("argv", [(), ("-r", "-a", "src=10.0.0.1", "protocol=6", "dport=80")])
def test_every_program_passes_this_kernels_verifier(privileged, argv):
    """kprobe and kretprobe programs load here (only attaching needs CONFIG_KPROBES): those of
    every default function, with and without filters and -r."""
    opts = _options(*argv)
    pkt_tracer.events.kind = "auto"
    pkt_tracer.events.resolve()
    with Collection() as coll:
        for i, target in enumerate(opts.targets.traced):
            for pdef in (pkt_tracer.entry_program(i, target, "kprobe"), pkt_tracer.return_program(i, target, "kprobe")):
                coll.load(pdef, opts)
        assert len(coll.programs) == 2 * len(opts.targets.traced)


def test_filters_are_host_order(privileged):
    opts = _options("-a", "sport=4165", "dport=16387", "dest=10.1.2.3")
    assert (opts.filter.packet.sport, opts.filter.packet.dport) == (4165, 16387)
    assert str(opts.filter.packet.dst) == "10.1.2.3"


@pytest.mark.parametrize("args, message", [
    (["-a", "src=x"], "not an IPv4 or IPv6 address"),
    (["-a", "host=1.2.3.4"], "filters are src="),
    (["-a", "sport=1", "sport=2"], "sport given twice"),
    (["-a", "protocol=300"], "out of range"),
    (["-i", "1"], "-i: pkt-tracer prints"),
    (["-f", "/nonexistent/pdt"], "No such file"),
])
def test_bad_input_is_one_line(args, message):
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
