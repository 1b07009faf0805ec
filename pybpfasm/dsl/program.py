"""Program declarations and the :class:`Collection` that loads and owns them.

::

    @tracepoint("skb", "kfree_skb")
    def on_drop(b, ctx, opts):
        ...

    with Collection() as coll:
        prog = coll.load(on_drop, opts)       # built for this kernel and these options
        coll.attach(on_drop)                  # a link; detached when coll closes
        counts = coll.map(drops)              # the live map behind a declaration

The decorated function runs once per load, with a :class:`~.builder.Builder`
``b``, the program's context ``ctx`` and the caller's options (if it takes a
third parameter).  Options decided in Python emit no code at all.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from ..btf import BTF
from ..errors import UsageError
from ..isa import Instruction
from ..maps import Map
from ..prog import Program, ProgramSpec
from ..sys import AttachType, ProgType
from .builder import Builder
from .context import (
    ArgsContext,
    KprobeContext,
    PacketContext,
    TracepointContext,
    entry,
    function_args,
    tracepoint_args,
)
from .maps import MapDecl, RingBuf
from .types import Space


@dataclass(eq=False)
class ProgramDef:
    """A program written in the eDSL, not yet built: kind, target and body."""

    body: Callable[..., Any]
    kind: str
    target: tuple = ()
    name: str = ""
    #: where to attach (interface, direction, mode, netns) for xdp/tc, set by the caller
    where: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = (self.name or self.body.__name__)[:15]

    def build(self, opts: Any = None, **builder_kw: Any) -> tuple[list[Instruction], dict[str, MapDecl]]:
        """Run the body: physical instructions (labels unresolved) and the maps they use."""
        b = Builder(self.kind, **builder_kw)
        ctx = _CONTEXTS[self.kind](b, entry(b), *self.target)
        params = len(inspect.signature(self.body).parameters)
        self.body(*((b, ctx, opts) if params >= 3 else (b, ctx)))
        b.return_(0)  # falling off the end returns 0 (pruned when unreachable)
        return b.finish(), dict(b.maps)

    def spec(self, code: list[Instruction], maps: dict[str, Any]) -> ProgramSpec:
        """The load spec: program type, attach type and BTF target for this kind."""
        prog_type, attach = _PROG_TYPES[self.kind]
        btf_id = 0
        if self.kind == "tp_btf":
            from ..link.tp_btf import tp_btf_id

            btf_id = tp_btf_id(self.target[0])
        elif self.kind in ("fentry", "fexit"):
            from ..link.fentry import func_btf_id

            btf_id = func_btf_id(self.target[0])
        return ProgramSpec(prog_type, code, maps=maps, name=self.name,
                           expected_attach_type=attach, attach_btf_id=btf_id)


def _tracepoint_ctx(b, reg, category: str, event: str):
    return TracepointContext(b, reg, category, event)


def _raw_tp_ctx(b, reg, event: str):
    types, names = tracepoint_args(b, event)
    return ArgsContext(b, reg, types, names, Space.KERNEL)


def _tp_btf_ctx(b, reg, event: str):
    types, names = tracepoint_args(b, event)
    return ArgsContext(b, reg, types, names, Space.BTF)


def _fentry_ctx(b, reg, function: str):
    types, names = function_args(b, function)
    return ArgsContext(b, reg, types, names, Space.BTF)


_CONTEXTS: dict[str, Callable[..., Any]] = {
    "tracepoint": _tracepoint_ctx,
    "raw_tracepoint": _raw_tp_ctx,
    "tp_btf": _tp_btf_ctx,
    "fentry": _fentry_ctx,
    "fexit": _fentry_ctx,
    "kprobe": lambda b, reg, fn: KprobeContext(b, reg, fn),
    "kretprobe": lambda b, reg, fn: KprobeContext(b, reg, fn),
    "xdp": lambda b, reg: PacketContext(b, reg, "struct xdp_md"),
    "tc": lambda b, reg: PacketContext(b, reg, "struct __sk_buff"),
    "socket_filter": lambda b, reg: PacketContext(b, reg, "struct __sk_buff"),
}

_PROG_TYPES = {
    "tracepoint": (ProgType.TRACEPOINT, None),
    "tp_btf": (ProgType.TRACING, AttachType.TRACE_RAW_TP),
    "fentry": (ProgType.TRACING, AttachType.TRACE_FENTRY),
    "fexit": (ProgType.TRACING, AttachType.TRACE_FEXIT),
    "raw_tracepoint": (ProgType.RAW_TRACEPOINT, None),
    "kprobe": (ProgType.KPROBE, None),
    "kretprobe": (ProgType.KPROBE, None),
    "xdp": (ProgType.XDP, AttachType.XDP),
    "tc": (ProgType.SCHED_CLS, None),
    "socket_filter": (ProgType.SOCKET_FILTER, None),
}


def _decorator(kind: str, *target: str) -> Callable[[Callable], ProgramDef]:
    return lambda body: ProgramDef(body, kind, tuple(target))


def tracepoint(category: str, event: str) -> Callable[[Callable], ProgramDef]:
    """A tracepoint program on ``category:event``."""
    return _decorator("tracepoint", category, event)


def raw_tracepoint(event: str) -> Callable[[Callable], ProgramDef]:
    return _decorator("raw_tracepoint", event)


def tp_btf(event: str) -> Callable[[Callable], ProgramDef]:
    return _decorator("tp_btf", event)


def fentry(function: str) -> Callable[[Callable], ProgramDef]:
    return _decorator("fentry", function)


def fexit(function: str) -> Callable[[Callable], ProgramDef]:
    return _decorator("fexit", function)


def kprobe(function: str) -> Callable[[Callable], ProgramDef]:
    return _decorator("kprobe", function)


def kretprobe(function: str) -> Callable[[Callable], ProgramDef]:
    return _decorator("kretprobe", function)


def xdp(body: Callable) -> ProgramDef:
    return ProgramDef(body, "xdp")


def tc(body: Callable) -> ProgramDef:
    return ProgramDef(body, "tc")


def socket_filter(body: Callable) -> ProgramDef:
    return ProgramDef(body, "socket_filter")


class Collection:
    """Owns the maps, programs and links of a set of eDSL programs.

    Closing it (or leaving its ``with`` block, on any exit) detaches every
    link and closes every descriptor.
    """

    def __init__(self, btf: BTF | None = None) -> None:
        #: kernel types for building programs (default: the running kernel's BTF)
        self.btf = btf
        self.maps: dict[MapDecl, Map] = {}
        self.programs: dict[ProgramDef, Program] = {}
        self.links: list[Any] = []

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for link in reversed(self.links):
            link.close()
        for prog in self.programs.values():
            prog.close()
        for m in self.maps.values():
            m.close()
        self.links.clear()
        self.programs.clear()
        self.maps.clear()

    def map(self, decl: MapDecl) -> Map:
        """The live map of *decl*, created on first use."""
        if decl not in self.maps:
            self.maps[decl] = decl.spec().create()
        return self.maps[decl]

    def load(self, pdef: ProgramDef, opts: Any = None, *, log_level: int = 0) -> Program:
        """Build *pdef* for this kernel and *opts*, create its maps, load it."""
        code, used = pdef.build(opts, btf=self.btf)
        live = {ref: self.map(decl) for ref, decl in used.items()}
        for decl in used.values():
            if isinstance(decl, RingBuf):
                self.map(decl.lost)
        spec = pdef.spec(code, live)
        prog = spec.load(log_level)
        self.programs[pdef] = prog
        return prog

    def attach(self, pdef: ProgramDef, **where: Any) -> Any:
        """Attach a loaded program at its target; xdp/tc take ``interface=``, ``netns=``..."""
        from .. import link

        prog = self.programs.get(pdef)
        if prog is None:
            raise UsageError(f"program {pdef.name!r} is not loaded")
        kind, target = pdef.kind, pdef.target
        if kind == "tracepoint":
            lnk = link.attach_tracepoint(prog, *target)
        elif kind == "raw_tracepoint":
            lnk = link.attach_raw_tracepoint(prog, *target)
        elif kind == "tp_btf":
            lnk = link.attach_tp_btf(prog)
        elif kind in ("fentry", "fexit"):
            lnk = link.attach_fentry(prog)
        elif kind in ("kprobe", "kretprobe"):
            lnk = link.attach_kprobe(prog, target[0], retprobe=kind == "kretprobe")
        elif kind == "xdp":
            lnk = link.attach_xdp(prog, **{**pdef.where, **where})
        elif kind == "tc":
            lnk = link.attach_tc(prog, **{**pdef.where, **where})
        else:
            raise UsageError(f"{kind} programs are attached by the caller (e.g. to a socket)")
        self.links.append(lnk)
        return lnk


__all__ = ["Collection", "ProgramDef", "fentry", "fexit", "kprobe", "kretprobe",
           "raw_tracepoint", "socket_filter", "tc", "tp_btf", "tracepoint", "xdp"]
