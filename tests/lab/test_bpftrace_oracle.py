"""A second, field-level oracle: bpftrace prints every lab drop's addresses, IP ID, ports,
ICMP type/code, device, namespace and reason, and every scenario must match its declaration
on those keys (not ``vlan``: the kernel has cleared the tag by the time of the drop).

Runs only where bpftrace is installed (it is not in CI: its packages are about 280 MB).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from typing import Any, Iterator

import pytest

from pybpfasm.lab.netns import runner, scenario
from pybpfasm.btf import BTF

pytestmark = pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}
SCRIPT = r"""
tracepoint:skb:kfree_skb {
  $skb = (struct sk_buff *)args->skbaddr;
  $n = $skb->dev->nd_net.net->ns.inum;
  if (%(filter)s) {
    $nh = $skb->head + $skb->network_header;
    if ((*(uint8 *)$nh >> 4) == 6) {
      $ip6 = (struct ipv6hdr *)$nh;
      printf("%%u %%d %%s 6 %%s %%s 0 %%u %%u\n", $n, args->reason, $skb->dev->name,
             ntop($ip6->saddr.in6_u.u6_addr8), ntop($ip6->daddr.in6_u.u6_addr8),
             $ip6->nexthdr, *(uint32 *)($nh + 40));
    } else {
      $ip = (struct iphdr *)$nh;
      printf("%%u %%d %%s 4 %%s %%s %%u %%u %%u\n", $n, args->reason, $skb->dev->name,
             ntop($ip->saddr), ntop($ip->daddr), $ip->id, $ip->protocol,
             *(uint32 *)($nh + $ip->ihl * 4));
    }
  }
}
"""


def swap16(x: int) -> int:
    return ((x & 0xFF) << 8) | (x >> 8)


class Bpftrace:
    keys = frozenset({"src", "dst", "ip_id", "proto", "sport", "dport", "icmp_type",
                      "icmp_code", "ifname", "reason", "netns"})

    def __init__(self, inodes: list[int]) -> None:
        names = BTF.kernel().enum("skb_drop_reason")
        self.reasons = {v: k.removeprefix("SKB_DROP_REASON_") for k, v in names.items()}
        script = SCRIPT % {"filter": " || ".join(f"$n == {i}" for i in inodes)}
        self.proc = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self._events: list[dict[str, Any]] = []
        self._attached = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._attached.wait(30):
            self.close()
            pytest.fail("bpftrace did not attach")

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("Attaching"):
                self._attached.set()
            elif line.strip():
                self._events.append(self._event(line.split()))

    def _event(self, f: list[str]) -> dict[str, Any]:
        netns, reason, ifname, version, src, dst, ip_id, proto, l4 = f
        proto_num, l4_raw = int(proto), int(l4)
        ports = proto_num in (6, 17)
        icmp = proto_num in (1, 58)
        return {
            "netns": int(netns), "reason": self.reasons[int(reason)], "ifname": ifname,
            "src": src, "dst": dst, "ip_id": swap16(int(ip_id)) if version == "4" else None,
            "proto": PROTOCOLS.get(proto_num, proto_num),
            "sport": swap16(l4_raw & 0xFFFF) if ports else None,
            "dport": swap16(l4_raw >> 16) if ports else None,
            "icmp_type": l4_raw & 0xFF if icmp else None,
            "icmp_code": (l4_raw >> 8) & 0xFF if icmp else None,
        }

    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # bpftrace's own clean exit
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:  # a loaded machine: do not hang the suite
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def tracer(drops_lab) -> Iterator[Bpftrace]:
    bt = Bpftrace(list(runner.lab_inodes(drops_lab).values()))
    yield bt
    bt.close()


@pytest.mark.parametrize("name", [s.name for s in scenario.load("drops").scenarios])
def test_scenario_fields_as_bpftrace_sees_them(drops_lab, tracer, name):
    (verdict,) = runner.run(drops_lab.select([name]), tracer)
    observed = [(e.describe(), seen) for e, seen in verdict.expected]
    assert verdict.ok, f"observed {observed}, unexpected {list(verdict.unexpected)}"
