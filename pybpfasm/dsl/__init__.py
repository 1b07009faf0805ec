"""The eDSL: BPF programs written as Python, staged at load time for this kernel.

::

    from pybpfasm.dsl import Collection, HashMap, RingBuf, Record, tracepoint, u32, u64

    drops = HashMap(u32, u64, 1024, name="drops")

    @tracepoint("skb", "kfree_skb")
    def count(b, ctx):
        drops.increment(b, ctx.reason)

    with Collection() as coll:
        coll.load(count)
        coll.attach(count)
        ...
        print(dict(coll.map(drops).items()))

See :mod:`.builder` (control flow and values), :mod:`.context` (what ``ctx``
is per program kind), :mod:`.maps`, :mod:`.record` and :mod:`.program`.
"""

from typing import Any

from .devmap import DevMapGroups, DevMapHash
from .errors import BuildError, DSLTypeError, UnknownName
from .maps import (
    ArrayMap,
    Events,
    HashMap,
    LRUHashMap,
    MapDecl,
    PerCPUArray,
    PerCPUHash,
    PerfEventArray,
    RingBuf,
    StackTraceMap,
)
from .program import (
    Collection,
    ProgramDef,
    fentry,
    fexit,
    kprobe,
    kretprobe,
    raw_tracepoint,
    socket_filter,
    tc,
    tp_btf,
    tracepoint,
    xdp,
)
from .record import KernelEnum, Record, kernel_enum
from .scalars import be16, be32, be64, char, s8, s16, s32, s64, u8, u16, u32, u64

#: names of the code-generation layer, imported on first use: declaring records,
#: maps and programs and loading a cached build need no BTF and no builder
_LAZY = {
    "Builder": ".builder", "Packet": ".context", "Space": ".types",
    "Cond": ".values", "Ref": ".values", "Value": ".values", "all_of": ".values", "any_of": ".values",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArrayMap", "BuildError", "Builder", "Collection", "Cond", "DSLTypeError", "DevMapGroups", "DevMapHash", "Events", "HashMap",
    "KernelEnum", "LRUHashMap", "MapDecl", "Packet", "PerCPUArray", "PerCPUHash", "PerfEventArray",
    "ProgramDef", "Record", "Ref", "RingBuf", "Space", "StackTraceMap", "UnknownName", "Value",
    "all_of", "any_of", "be16", "be32", "be64", "char", "fentry", "fexit", "kernel_enum", "kprobe",
    "kretprobe", "raw_tracepoint", "s8", "s16", "s32", "s64", "socket_filter", "tc", "tp_btf",
    "tracepoint", "u8", "u16", "u32", "u64", "xdp",
]
