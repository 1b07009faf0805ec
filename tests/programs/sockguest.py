"""The socket tools on each of their hooks against the scripted workload, in a guest
whose kernel has kprobes (the VM lab; bpftool and pytest not needed there).

``python3 -m tests.programs.sockguest TOOL:HOOK...`` prints one JSON line per
pair: what the tool reported for the workload's process name and what was
expected; the exit status is 0 only when every count is exact.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections import Counter

from pybpfasm.lab.workloads.sockets import ACCEPTS, CONNECTS, Workload, addresses, calls

UDP = 3
#: send/recv calls of the workload that reach __sock_sendmsg / sock_recvmsg (sendto, sendmsg
#: and recvfrom, recvmsg: two on a TCP socket and one on a UDP socket each way)
SOCK_MSG = {"kprobe:__sock_sendmsg": 3, "kprobe:sock_recvmsg": 3}
BASE = ("socket", "bind", "connect", "accept4")


def sockstat_expected(hook: str) -> dict[str, int]:
    made = calls(UDP)
    counts = {f"tracepoint:syscalls:sys_enter_{name}": made[name] for name in BASE}
    if hook == "kprobe":
        return {**counts, **SOCK_MSG}
    return {f"tracepoint:syscalls:sys_enter_{name}": n for name, n in made.items()}


def sockstat_counted(summaries: list[dict]) -> dict[str, int]:
    total: Counter = Counter()
    for summary in summaries:
        total.update(summary["counts"])
    return dict(total)


def by_call(accepts, connects) -> dict[str, list]:
    """``{"accept": [[*key, n]...], "connect": [...]}`` of the keys given, counted and sorted."""
    return {name: sorted([*key, n] for key, n in Counter(keys).items())
            for name, keys in (("accept", accepts), ("connect", connects))}


def summed(summaries: list[dict], fields: tuple[str, ...]) -> dict[str, list]:
    """The summaries' rows of each call, counted by *fields* (as :func:`by_call` gives them)."""
    out = {}
    for name in ("accept", "connect"):
        total: Counter = Counter()
        for summary in summaries:
            for row in summary[name]:
                total[tuple(row[f] for f in fields)] += row["count"]
        out[name] = sorted([*key, n] for key, n in total.items())
    return out


def soprotocol_expected(hook: str) -> dict[str, list]:
    return by_call([(a[1], a[2]) for a in ACCEPTS], [(c[1], c[2]) for c in CONNECTS])


def soprotocol_counted(summaries: list[dict]) -> dict[str, list]:
    return summed(summaries, ("protocol", "kernel_name"))


def sofamily_expected(hook: str) -> dict[str, list]:
    return by_call([(a[0],) for a in ACCEPTS], [(c[0],) for c in CONNECTS])


def sofamily_counted(summaries: list[dict]) -> dict[str, list]:
    return summed(summaries, ("family",))


def soconnect_expected(hook: str) -> list[list]:
    where = addresses()
    return sorted(([f, *where[to], errno_name(err)] for f, _, _, err, to in CONNECTS if to in where), key=str)


def soconnect_counted(events: list[dict]) -> list[list]:
    return sorted(([e["family"], e["address"], e["port"], e["errno"]] for e in events), key=str)


def errno_name(err: int) -> str | None:
    return errno.errorcode[err] if err else None


CHECKS = {"sockstat": (sockstat_expected, sockstat_counted),
          "soprotocol": (soprotocol_expected, soprotocol_counted),
          "sofamily": (sofamily_expected, sofamily_counted),
          "soconnect": (soconnect_expected, soconnect_counted)}


def run(name: str, hook: str, serial: int) -> dict:
    """One tool on one hook around one workload run in a namespace of its own."""
    comm, netns = f"pbg-{os.getpid() % 10000}-{serial}", f"pbg-{os.getpid()}-{serial}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        work = Workload(comm, netns, UDP)
        mon = subprocess.Popen([sys.executable, "-m", "pybpfasm.cli", name, "-c", comm, "--json",
                                "--hook", hook], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        notes = []
        while not (line := mon.stderr.readline()).startswith("Tracing") and line:
            notes.append(line.strip())
        work.run()
        mon.send_signal(signal.SIGINT)
        out, err = mon.communicate(timeout=60)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    expected, counted = CHECKS[name]
    summaries = [json.loads(line) for line in out.splitlines() if line.strip()]
    got, want = counted(summaries), expected(hook)
    return {"tool": name, "hook": hook, "exact": got == want, "counted": got, "expected": want,
            "notes": notes, "status": mon.returncode, "stderr": err.strip()}


def main(pairs: list[str]) -> int:
    exact = True
    for serial, pair in enumerate(pairs):
        name, _, hook = pair.partition(":")
        result = run(name, hook, serial)
        exact = exact and result["exact"] and result["status"] == 0
        print(json.dumps(result), flush=True)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
