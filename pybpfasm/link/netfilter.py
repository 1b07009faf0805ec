"""BPF netfilter programs (6.4+): a program at a netfilter hook of one network namespace.

::

    with attach_netfilter(prog, "ipv4", "local_in", priority=-100, netns="lab1"):
        ...   # prog sees every IPv4 packet bound for this host in lab1, after defrag

The program (``BPF_PROG_TYPE_NETFILTER``, loaded with expected attach type
``BPF_NETFILTER``) gets a ``struct bpf_nf_ctx`` (``state``, ``skb``) and returns a
verdict: ``NF_ACCEPT`` (1) or ``NF_DROP`` (0).  The attachment is always a
``bpf_link`` registered in the namespace the calling thread is in (entered for
the call when ``netns`` is given); the kernel unregisters the hook when the link's
last descriptor closes.  Hook numbers and priorities are the kernel's own
(``enum nf_inet_hooks``, ``enum nf_ip_hook_priorities`` in BTF).
"""

from __future__ import annotations

import errno
import functools
import socket

from ..errors import UsageError
from ..prog import Program
from ..sys import AttachType, SyscallError
from .base import FDLink, link_create
from .netns import entered

#: protocol family names -> NFPROTO_* (equal to the address families by the uapi's design)
FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
#: BPF_F_NETFILTER_IP_DEFRAG (6.6): the kernel defragments before the program runs
IP_DEFRAG = 1 << 0
#: the verdicts a netfilter program returns
NF_DROP, NF_ACCEPT = 0, 1


@functools.cache
def hooks() -> dict[str, int]:
    """Hook name (``pre_routing``, ``local_in``, ...) -> number, from ``enum nf_inet_hooks``."""
    from ..btf import BTF

    return {name[len("NF_INET_"):].lower(): value for name, value in BTF.kernel().enum("nf_inet_hooks").items()
            if name != "NF_INET_NUMHOOKS"}


@functools.cache
def priorities(family: str) -> dict[str, int]:
    """Named priorities of *family* (``conntrack_defrag`` -> -400 ...), from the kernel's BTF."""
    from ..btf import BTF

    enum, prefix = (("nf_ip_hook_priorities", "NF_IP_PRI_") if family == "ipv4"
                    else ("nf_ip6_hook_priorities", "NF_IP6_PRI_"))
    return {name[len(prefix):].lower(): value for name, value in BTF.kernel().enum(enum).items()}


def attach_netfilter(prog: Program, family: str, hook: str, priority: int | range, *,
                     netns: str | None = None, defrag: bool = False) -> FDLink:
    """Attach *prog* at *hook* (``local_in``...) of *family* (``ipv4``/``ipv6``) in *netns*
    (a name under /run/netns or a path such as /proc/PID/ns/net; None: this thread's).

    *priority* orders it among the hook's other functions (lower runs first); the kernel
    refuses the extreme values (``NF_IP_PRI_FIRST``/``LAST``) and a priority already
    taken by another BPF program on the same hook (EBUSY): a ``range`` of priorities
    takes the first free one.  ``defrag=True`` asks the kernel
    to reassemble fragments first (it enables conntrack's defrag in that namespace).
    """
    if family not in FAMILIES:
        raise UsageError(f"unknown netfilter family {family!r} (ipv4 or ipv6)")
    numbers = hooks()
    if hook not in numbers:
        raise UsageError(f"unknown netfilter hook {hook!r} (one of {', '.join(numbers)})")
    candidates = priority if isinstance(priority, range) else range(priority, priority + 1)
    with entered(netns):
        for number in candidates:
            spec = {"pf": FAMILIES[family], "hooknum": numbers[hook], "priority": number,
                    "flags": IP_DEFRAG if defrag else 0}
            try:
                return FDLink(link_create(prog.fileno(), 0, AttachType.NETFILTER, netfilter=spec,
                                          hint="a netfilter program needs expected_attach_type "
                                               "NETFILTER, a priority no other BPF program holds "
                                               "on this hook, and 6.4+"))
            except SyscallError as err:
                if err.errno != errno.EBUSY or number == candidates[-1]:
                    raise
    raise UsageError("attach_netfilter: an empty range of priorities")
