"""The function-level facts a defrag tool needs, on each kernel that has kprobes (the VM lab:
``pybpfasm lab vm run --kernel 6.1 -- python3 -m pytest tests/kernel/test_defrag_functions.py``).

* which of the reassembly functions the issue names are real functions here (in kallsyms) and
  which the compiler inlined into their callers (then no probe can see them);
* ``inet_frag_queue_insert`` (5.1+, exported, so never inlined) answers ``IPFRAG_OK`` (0),
  ``IPFRAG_DUP`` (1) or ``IPFRAG_OVERLAP`` (2): a kretprobe counts its answers for crafted
  IPv4 and IPv6 trains with a known duplicate and a known overlap.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from pybpfasm.dsl import Collection, HashMap, ProgramDef, Record, u32
from pybpfasm.kernel import Kallsyms
from pybpfasm.lab.netns import packets
from pybpfasm.link import kprobes_available

#: the issue's functions; the ones a build may inline vary by kernel and are reported
FUNCTIONS = ("ip_defrag", "ip_frag_queue", "inet_frag_queue_insert", "ip_frag_reasm", "ip_expire",
             "inet_frag_kill", "ipv6_frag_rcv", "ip6_frag_queue", "ip6_frag_reasm",
             "ip6_frag_expire", "nf_ct_frag6_gather")
#: exported or called through pointers: never inlined, on every kernel with the feature
ALWAYS = ("ip_defrag", "inet_frag_queue_insert", "inet_frag_kill", "ipv6_frag_rcv")
IPFRAG_OK, IPFRAG_DUP, IPFRAG_OVERLAP = 0, 1, 2
TX, RX = "pdf-k-tx", "pdf-k-rx"
MAC_TX, MAC_RX = "02:00:0a:50:00:01", "02:00:0a:50:00:02"


class Answer(Record):
    value: u32


answers = HashMap(Answer, u32, 16, name="dfk_answers")


def on_insert_return(b, ctx):
    key = b.stack(Answer)
    key.value = ctx.ret
    answers.increment(b, key)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def pair():
    """Two namespaces joined by a veth, addressed 10.80.0.1/2 and fd80::1/2, no ARP or ND."""
    for ns in (TX, RX):
        _ip("netns", "add", ns)
    try:
        _ip("-n", TX, "link", "add", "tx0", "address", MAC_TX, "type", "veth", "peer", "name", "rx0",
            "address", MAC_RX, "netns", RX)
        for ns, dev, v4, v6 in ((TX, "tx0", "10.80.0.1/24", "fd80::1/64"), (RX, "rx0", "10.80.0.2/24", "fd80::2/64")):
            _ip("-n", ns, "addr", "add", v4, "dev", dev)
            _ip("-n", ns, "addr", "add", v6, "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
        yield
    finally:
        for ns in (TX, RX):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def test_which_functions_are_real_here():
    symbols = Kallsyms.load()
    found = {f: f in symbols for f in FUNCTIONS}
    print(f"kernel {os.uname().release}: " + ", ".join(
        f"{f} {'present' if here else 'inlined or absent'}" for f, here in found.items()))
    assert all(found[f] for f in ALWAYS), found


def test_insert_answers_ok_dup_and_overlap(pair):
    if not kprobes_available():
        pytest.skip("kprobes: not in this kernel, covered in the VM lab")
    trains = []
    for src, dst, udp in (("10.80.0.1", "10.80.0.2", packets.udp4), ("fd80::1", "fd80::2", packets.udp6)):
        data = udp(src, dst, 41000, 7001, bytes(40))
        trains += packets.fragment_spans(src, dst, packets.IPPROTO_UDP, data, 501, [(0, 16), (0, 16), (16, 48)])
        trains += packets.fragment_spans(src, dst, packets.IPPROTO_UDP, data, 502, [(0, 24), (16, 32), (32, 48)])
    pdef = ProgramDef(on_insert_return, "kretprobe", ("inet_frag_queue_insert",), name="dfk_insert")
    with Collection() as coll:
        coll.load(pdef)
        coll.attach(pdef)
        packets.send_frames(TX, "tx0", [packets.ethernet(MAC_RX, MAC_TX, f) for f in trains])
        time.sleep(0.5)
        seen = {key.value: n for key, n in coll.map(answers).items()}
    # per family: the duplicate train inserts OK, DUP, OK; the overlap train OK, OVERLAP, and
    # its last fragment starts a new queue (OK)
    assert seen == {IPFRAG_OK: 8, IPFRAG_DUP: 2, IPFRAG_OVERLAP: 2}
