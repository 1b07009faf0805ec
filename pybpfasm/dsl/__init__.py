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

from .builder import Builder, BuildError
from .context import Packet
from .errors import DSLTypeError, UnknownName
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
from .types import Space, be16, be32, be64, char, s8, s16, s32, s64, u8, u16, u32, u64
from .values import Cond, Ref, Value, all_of, any_of

__all__ = [
    "ArrayMap", "BuildError", "Events", "KernelEnum", "kernel_enum", "Builder", "Collection", "Cond", "HashMap", "LRUHashMap", "MapDecl",
    "Packet", "PerCPUArray", "PerCPUHash", "PerfEventArray", "ProgramDef", "Record", "Ref", "RingBuf", "Space",
    "StackTraceMap", "Value", "be16", "be32", "be64", "char", "fentry", "fexit", "kprobe",
    "kretprobe", "raw_tracepoint", "s8", "s16", "s32", "s64", "socket_filter", "tc", "tp_btf",
    "tracepoint", "u8", "u16", "u32", "u64", "xdp",
    "DSLTypeError", "UnknownName", "all_of", "any_of",
]
