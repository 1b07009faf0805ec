"""The socket tools' demo cases: sockstat, sofamily, soprotocol and soconnect on the scripted
socket workload (:mod:`pybpfasm.lab.workloads.sockets`), each filtered to its process name.

What each tool must print follows from the workload's declared calls alone: the calls by
syscall, the accepts and connects by family and protocol, every IP connect's address, port
and result; the names are the host's (Python's ``socket`` and ``errno`` modules) and the
result strings the bpftrace book's.
"""

from __future__ import annotations

import errno
import socket
from collections import Counter
from typing import Any, Mapping

from ..workloads import sockets
from .scenario import Expectation
from .verdict import expand
from .workcase import Setting, WorkloadCase, WorkloadScenario

UDP = 5  # UDP sockets the workload makes and binds first
DECOY_UDP = 2  # ... and a decoy of the same name in the other namespace
PROBE = "tracepoint:syscalls:sys_enter_{}"
#: soprotocol's protocol names for the workload's protocols
PROTOCOLS = {0: "IPPROTO_IP", socket.IPPROTO_TCP: "IPPROTO_TCP", socket.IPPROTO_UDP: "IPPROTO_UDP"}
#: soconnect's RESULT for the workload's connects (the book's strings, strerror's otherwise)
RESULTS = {0: "Success", errno.ECONNREFUSED: "Connect refused",
           errno.ENETUNREACH: "Network unreachable", errno.EINPROGRESS: "In progress"}


def _start(setting: Setting) -> sockets.Workload:
    return sockets.Workload(setting.comm, setting.netns, UDP, spawn=setting.spawn)


def _decoy(setting: Setting) -> list[sockets.Workload]:
    """The workload under the same name in the other namespace, with fewer UDP sockets."""
    return [sockets.Workload(setting.comm, setting.twin_netns, DECOY_UDP, spawn=setting.spawn)]


def _by_comm(setting: Setting, _work: Any) -> list[str]:
    return ["-c", setting.comm, "--hook", "tracepoint"]


def _by_pid(setting: Setting, work: sockets.Workload) -> list[str]:
    return ["-p", str(work.pid), "--hook", "tracepoint"]


def _calls(setting: Setting, _work: Any) -> list[Expectation]:
    return [Expectation(n, {"probe": PROBE.format(name)}) for name, n in sockets.calls(UDP).items()]


def _probes(objects: list[dict]) -> list[Mapping[str, Any]]:
    """sockstat's interval objects as one event per call counted."""
    return expand({"probe": probe, "count": n} for obj in objects for probe, n in obj["counts"].items())


def _summary(objects: list[dict]) -> list[Mapping[str, Any]]:
    """An at-exit summary's rows as one event per call counted, each with its map's name."""
    return expand({"call": call, **row} for obj in objects for call in ("accept", "connect")
                  for row in obj[call])


def _families(setting: Setting, _work: Any) -> list[Expectation]:
    def rows(call: str, families: list[int]) -> list[Expectation]:
        return [Expectation(n, {"call": call, "comm": setting.comm, "family": f,
                                "name": socket.AddressFamily(f).name}) for f, n in Counter(families).items()]

    return rows("accept", [a[0] for a in sockets.ACCEPTS]) + rows("connect", [c[0] for c in sockets.CONNECTS])


def _protocols(setting: Setting, _work: Any) -> list[Expectation]:
    def rows(call: str, protocols: list[tuple[int, str]]) -> list[Expectation]:
        return [Expectation(n, {"call": call, "comm": setting.comm, "protocol": p, "name": PROTOCOLS[p],
                                "kernel_name": k}) for (p, k), n in Counter(protocols).items()]

    return (rows("accept", [(a[1], a[2]) for a in sockets.ACCEPTS])
            + rows("connect", [(c[1], c[2]) for c in sockets.CONNECTS]))


def _connects(setting: Setting, work: sockets.Workload) -> list[Expectation]:
    where = sockets.addresses()
    out = []
    for family, _, _, err, to in sockets.CONNECTS:
        if family in (socket.AF_INET, socket.AF_INET6):
            address, port = where[to]
            out.append(Expectation(1, {"pid": work.pid, "comm": setting.comm, "family": family,
                                       "address": address, "port": port,
                                       "errno": errno.errorcode[err] if err else None,
                                       "result": RESULTS[err]}))
    return out


CALLS = f"the socket workload: {sum(sockets.calls(UDP).values())} socket calls"
DECOY = "a decoy of the same name in another namespace"
CASES = (
    WorkloadCase("sockstat", (
        WorkloadScenario("sockstat-calls", f"{CALLS}, counted by syscall", _start, _by_comm, _calls, _probes),
        WorkloadScenario("sockstat-pid", f"the same under -p PID, {DECOY} left out", _start, _by_pid,
                         _calls, _probes, decoys=_decoy),
    )),
    WorkloadCase("sofamily", (WorkloadScenario(
        "sofamily-families", f"{CALLS}: its accepts and connects by family", _start,
        lambda s, w: ["-c", s.comm], _families, _summary, objects=1),)),
    WorkloadCase("soprotocol", (WorkloadScenario(
        "soprotocol-protocols", f"{CALLS}: its accepts and connects by protocol", _start, _by_comm,
        _protocols, _summary, objects=1),)),
    WorkloadCase("soconnect", (
        WorkloadScenario("soconnect-results", "IPv4/IPv6 connects: listening, closed (ECONNREFUSED), "
                         "unroutable (ENETUNREACH), non-blocking (EINPROGRESS)", _start,
                         lambda s, w: ["-c", s.comm], _connects),
        WorkloadScenario("soconnect-pid", f"the same under -p PID, {DECOY} left out", _start,
                         lambda s, w: ["-p", str(w.pid)], _connects, decoys=_decoy),
    )),
)
