"""What the OVS tools share: the ``openvswitch`` module, its BTF, its enums and its code.

Types (``struct vport``, ``struct datapath``) and enums (``ovs_action_attr``,
``ovs_drop_reason``) come from the module's split BTF,
``/sys/kernel/btf/openvswitch`` (5.11+ kernels built with module BTF).  The
module's code is located through ``/proc/kallsyms`` and ``/proc/modules``:
drops are told apart by where in the module they happen.  The datapath's
limits are read from the sizes of the arrays that hold them, as the kernel
declares them (``struct action_fifo``, ``struct action_flow_keys``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

MODULE = "openvswitch"
MODULE_BTF = f"/sys/kernel/btf/{MODULE}"
ACTION_PREFIX = "OVS_ACTION_ATTR_"
DROP_PREFIX = "OVS_DROP_"
#: the kernel's ``enum skb_drop_reason_subsys`` member for this module (6.6+)
SUBSYS = "SKB_DROP_REASON_SUBSYS_OPENVSWITCH"
#: drop reasons carry their subsystem in the high 16 bits (``SKB_DROP_REASON_SUBSYS_SHIFT``)
SUBSYS_SHIFT = 16


def unavailable() -> str | None:
    """Why the OVS tools cannot run here (None: the module is loaded)."""
    if not os.path.isdir(f"/sys/module/{MODULE}"):
        return (f"the {MODULE} kernel module is not loaded (no /sys/module/{MODULE}); "
                "the OVS tools run where Open vSwitch's kernel datapath does (see the VM lab)")
    return None


@functools.cache
def module_btf():
    """The module's BTF (split on the kernel's), or None where the kernel has no module BTF."""
    from pybpfasm.btf import BTF, BTFError

    try:
        return BTF.module(MODULE)
    except BTFError:
        return None


def kernel_type(name: str):
    """The module's type *name* (``"struct vport"``) for eDSL casts; raises without module BTF."""
    from pybpfasm.dsl.types import KernelType
    from pybpfasm.errors import BPFError

    btf = module_btf()
    if btf is None:
        raise BPFError(f"{name}: this kernel has no module BTF ({MODULE_BTF})")
    return KernelType.named(btf, name)


def _module_enum(enum: str, prefix: str) -> dict[int, str] | None:
    from pybpfasm.btf import BTFError

    btf = module_btf()
    if btf is None:
        return None
    try:
        members = btf.enum(enum)
    except BTFError:
        return None
    return {v: k[len(prefix):] if k.startswith(prefix) else k
            for k, v in members.items() if not k.startswith("__")}


def action_names() -> dict[int, str] | None:
    """``{1: "OUTPUT", 20: "CLONE", ...}`` from ``enum ovs_action_attr``, or None without BTF."""
    return _module_enum("ovs_action_attr", ACTION_PREFIX)


def drop_reason_names() -> dict[int, str] | None:
    """``{value: "METER", ...}`` from ``enum ovs_drop_reason`` (6.6+), or None."""
    names = _module_enum("ovs_drop_reason", DROP_PREFIX)
    return {v: n for v, n in names.items() if n != "MAX"} if names else None


def subsystem() -> int | None:
    """The kernel's drop-reason subsystem number of openvswitch, or None before 6.6."""
    from pybpfasm.btf import BTF, BTFError

    try:
        return BTF.kernel().enum("skb_drop_reason_subsys").get(SUBSYS)
    except BTFError:
        return None


def array_length(struct: str, member: str) -> int | None:
    """The element count of array *member* of the module's *struct*, or None without BTF."""
    from pybpfasm.errors import BPFError

    btf = module_btf()
    if btf is None:
        return None
    try:
        field = kernel_type(struct).member(member)
    except BPFError:
        return None
    return getattr(btf.type(btf.resolve(field.type_id)), "nelems", None)


@dataclass(frozen=True)
class Limits:
    """The datapath's per-CPU limits (actions.c): deferred actions and recursion."""

    deferred: int  #: DEFERRED_ACTION_FIFO_SIZE: deferred actions one CPU can hold
    threshold: int  #: OVS_DEFERRED_ACTION_THRESHOLD: nesting levels before actions are deferred
    recursion: int  #: OVS_RECURSION_LIMIT: nested ovs_execute_actions() calls


def limits() -> Limits | None:
    """The limits, from the sizes of the arrays that hold them, or None without module BTF.

    The kernel defines ``OVS_DEFERRED_ACTION_THRESHOLD`` as ``OVS_RECURSION_LIMIT - 2``.
    """
    fifo = array_length("struct action_fifo", "fifo")
    keys = array_length("struct action_flow_keys", "key")
    if fifo is None or keys is None:
        return None
    return Limits(fifo, keys, keys + 2)


@dataclass(frozen=True)
class Code:
    """Where the module's code lies: its whole image and each function's address range."""

    start: int
    end: int
    functions: dict[str, tuple[int, int]]

    def function(self, name: str) -> tuple[int, int]:
        from pybpfasm.errors import BPFError

        try:
            return self.functions[name]
        except KeyError:
            raise BPFError(f"no function {name} in the {MODULE} module") from None


@functools.cache
def code() -> Code:
    """The module's address range (``/proc/modules``) and function ranges (``/proc/kallsyms``)."""
    from pybpfasm.errors import BPFError

    with open("/proc/modules") as f:
        for line in f:
            parts = line.split()
            if parts[0] == MODULE:
                start = int(parts[5], 16)
                end = start + int(parts[1])
                break
        else:
            raise BPFError(unavailable() or f"{MODULE} is not in /proc/modules")
    if start == 0:
        raise BPFError("/proc/modules hides addresses (kptr_restrict): run as root")
    symbols = []
    tag = f"[{MODULE}]"
    with open("/proc/kallsyms") as f:
        for line in f:
            if line.rstrip().endswith(tag):
                addr, kind, name = line.split()[:3]
                if kind in "tT":
                    symbols.append((int(addr, 16), name))
    symbols.sort()
    bounds = [a for a, _ in symbols[1:]] + [end]
    functions = {name: (addr, nxt) for (addr, name), nxt in zip(symbols, bounds)}
    return Code(start, end, functions)
