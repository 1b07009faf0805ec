"""IP fragment memory per network namespace, and the namespaces there are.

The kernel keeps, per namespace and family, the memory its reassembly queues hold
(``/proc/net/sockstat`` ``FRAG: inuse N memory M``, ``sockstat6`` ``FRAG6:``) and the
threshold above which ``inet_frag_find`` refuses every fragment (the
``ipfrag_high_thresh`` sysctls).  Both are read from inside the namespace.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from pybpfasm.link.netns import entered

#: family -> (sockstat file, its line's label, the high-threshold sysctl)
FILES = {
    "ipv4": ("sockstat", "FRAG:", "/proc/sys/net/ipv4/ipfrag_high_thresh"),
    "ipv6": ("sockstat6", "FRAG6:", "/proc/sys/net/ipv6/ip6frag_high_thresh"),
}


def namespaces() -> dict[int, str]:
    """Inode -> a path that enters it, for every network namespace named under /run/netns
    or held by a process now."""
    found: dict[int, str] = {}
    for path in [*sorted(glob.glob("/run/netns/*")), *glob.glob("/proc/[0-9]*/ns/net")]:
        try:
            inode = os.stat(path).st_ino
        except OSError:  # gone, or not a namespace
            continue
        found.setdefault(inode, path)
    return found


def own_namespace() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@dataclass(frozen=True)
class FragMemory:
    family: str
    queues: int
    bytes: int
    high_thresh: int


def memory(path: str | None) -> list[FragMemory]:
    """Fragment queues, their memory and the threshold, per family, in namespace *path*."""
    out = []
    with entered(path):
        for family, (name, label, sysctl) in FILES.items():
            try:
                with open(f"/proc/thread-self/net/{name}") as f:
                    line = next(ln for ln in f if ln.startswith(label)).split()
                with open(sysctl) as f:
                    thresh = int(f.read())
            except (OSError, StopIteration, ValueError):
                continue  # IPv6 disabled in this namespace
            values = dict(zip(line[1::2], line[2::2]))
            out.append(FragMemory(family, int(values["inuse"]), int(values["memory"]), thresh))
    return out
