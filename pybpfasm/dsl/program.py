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
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UsageError
from ..isa import Instruction
from ..maps import Map
from ..prog import Program, ProgramSpec
from ..sys import AttachType, ProgType
from .maps import MapDecl
from .record import Record, resolve_enums, restore_enums

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from .cache import ProgramCache


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

    def identity(self) -> tuple:
        """What distinguishes this definition's builds (for a program cache)."""
        return (self.body.__module__, self.body.__qualname__, self.kind, self.target, self.name,
                sorted(self.where.items()))

    def build(self, opts: Any = None, **builder_kw: Any) -> tuple[list[Instruction], dict[str, MapDecl]]:
        """Run the body: physical instructions (labels unresolved) and the maps they use."""
        from .builder import Builder
        from .context import entry

        b = Builder(self.kind, **builder_kw)
        ctx = _context(self.kind, b, entry(b), *self.target)
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


def _context(kind: str, b: Any, reg: Any, *target: str) -> Any:
    """The ``ctx`` a program of *kind* gets."""
    from . import context as c
    from .types import Space

    if kind == "tracepoint":
        return c.TracepointContext(b, reg, *target)
    if kind in ("raw_tracepoint", "tp_btf"):
        types, names = c.tracepoint_args(b, target[0])
        return c.ArgsContext(b, reg, types, names, Space.KERNEL if kind == "raw_tracepoint" else Space.BTF)
    if kind in ("fentry", "fexit"):
        types, names = c.function_args(b, target[0])
        return c.ArgsContext(b, reg, types, names, Space.BTF)
    if kind in ("kprobe", "kretprobe"):
        return c.KprobeContext(b, reg, target[0])
    if kind == "netfilter":
        return c.PacketContext(b, reg, "struct bpf_nf_ctx")  # ctx.skb, ctx.state: kernel pointers
    return c.PacketContext(b, reg, "struct xdp_md" if kind == "xdp" else "struct __sk_buff")


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
    "netfilter": (ProgType.NETFILTER, AttachType.NETFILTER),
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
    link and closes every descriptor.  With a :class:`~.cache.ProgramCache`,
    a program built before for this kernel, these sources and these options
    is loaded from the cache without BTF or a build.
    """

    def __init__(self, btf: BTF | None = None, cache: ProgramCache | None = None) -> None:
        #: kernel types for building programs (default: the running kernel's BTF)
        self.btf = btf
        self.cache = cache
        self.maps: dict[MapDecl, Map] = {}
        self.programs: dict[ProgramDef, Program] = {}
        self.links: list[Any] = []
        self._links_of: dict[ProgramDef, list[Any]] = {}
        #: the programs :meth:`load` took from the cache
        self.cached: set[ProgramDef] = set()

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
        self._links_of.clear()
        self.programs.clear()
        self.maps.clear()

    def map(self, decl: MapDecl) -> Map:
        """The live map of *decl*, created on first use."""
        if decl not in self.maps:
            self.maps[decl] = decl.spec().create()
        return self.maps[decl]

    def load(self, pdef: ProgramDef, opts: Any = None, *, log_level: int = 0) -> Program:
        """Build *pdef* for this kernel and *opts* (or take it from the cache), create
        its maps, load it.  Loading a definition again replaces its program."""
        self.unload(pdef)
        key = self.cache.key(pdef.identity(), opts) if self.cache is not None and not log_level else None
        entry = self.cache.get(key) if key is not None else None
        prog = self._load_cached(pdef, entry) if entry is not None else None
        if prog is None:
            prog = self._build_and_load(pdef, opts, log_level, key)
        else:
            self.cached.add(pdef)
        self.programs[pdef] = prog
        return prog

    def unload(self, pdef: ProgramDef) -> None:
        """Detach and close *pdef*'s program if it is loaded (its maps stay)."""
        prog = self.programs.pop(pdef, None)
        if prog is None:
            return
        for lnk in self._links_of.pop(pdef, []):
            lnk.close()
            self.links.remove(lnk)
        prog.close()
        self.cached.discard(pdef)

    def _build_and_load(self, pdef: ProgramDef, opts: Any, log_level: int, key: str | None) -> Program:
        from ..asm import assemble
        from ..btf import BTF
        from ..isa import encode
        from .cache import encode_btf, encode_code, map_slots

        code, used = pdef.build(opts, btf=self.btf)
        live = {ref: self.map(decl) for ref, decl in used.items()}
        for decl in used.values():
            for extra in decl.companions():
                self.map(extra)
        spec = pdef.spec(code, live)
        prog = spec.load(log_level)
        enums: dict[str, dict[int, str]] = {}
        for record in _records(used.values()):
            enums.update(resolve_enums(record, self.btf or BTF.kernel()))
        if key is not None and self.cache is not None:
            refs = list(used)
            placeholders = assemble(code, maps={ref: i for i, ref in enumerate(refs)})
            self.cache.put(key, {
                "name": spec.name,
                "type": int(spec.type),
                "attach": None if spec.expected_attach_type is None else int(spec.expected_attach_type),
                "attach_btf_id": spec.attach_btf_id,
                "code": encode_code(encode(placeholders)),
                "slots": map_slots(placeholders),
                "maps": [_map_shape(used[ref]) for ref in refs],
                "companions": [[c.name for c in used[ref].companions()] for ref in refs],
                "enums": {k: {str(v): n for v, n in t.items()} for k, t in enums.items()},
                # functions (bpf_loop callbacks...): the program BTF the kernel got, as it got it
                "btf": None if spec.btf is None else encode_btf(spec.btf),
            })
        return prog

    def _load_cached(self, pdef: ProgramDef, entry: dict[str, Any]) -> Program | None:
        """The program saved in *entry*, loaded; None if the entry does not fit these declarations."""
        from .cache import decode_btf, decode_code, patch_fds

        names = [shape[0] for shape in entry["maps"]] + [n for c in entry["companions"] for n in c]
        if MapDecl.ambiguous.intersection(names):
            return None  # two declarations share a name: only a build knows which is meant
        try:
            decls = [MapDecl.by_name[shape[0]] for shape in entry["maps"]]
            if [_map_shape(d) for d in decls] != entry["maps"]:
                return None
            companions = [[MapDecl.by_name[n] for n in names] for names in entry["companions"]]
            code = decode_code(entry["code"])
            attach = entry["attach"]
            spec = ProgramSpec(ProgType(entry["type"]), b"", name=entry["name"],
                               expected_attach_type=None if attach is None else AttachType(attach),
                               attach_btf_id=int(entry["attach_btf_id"]))
            slots = [(int(slot), int(index)) for slot, index in entry["slots"]]
            enums = {k: {int(v): n for v, n in t.items()} for k, t in entry["enums"].items()}
            if entry.get("btf") is not None:
                spec.btf = decode_btf(entry["btf"])
        except (KeyError, TypeError, ValueError):
            return None
        fds = [self.map(d).fileno() for d in decls]
        for extra in companions:
            for decl in extra:
                self.map(decl)
        spec.code = patch_fds(code, slots, fds)
        restore_enums(enums)
        return spec.load()

    def attach(self, pdef: ProgramDef, **where: Any) -> Any:
        """Attach a loaded program at its target; xdp/tc take ``interface=``, ``netns=``...,
        netfilter ``family=``, ``hook=``, ``priority=``, ``netns=`` (once per namespace)."""
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
        elif kind == "netfilter":
            lnk = link.attach_netfilter(prog, **{**pdef.where, **where})
        else:
            raise UsageError(f"{kind} programs are attached by the caller (e.g. to a socket)")
        self.links.append(lnk)
        self._links_of.setdefault(pdef, []).append(lnk)
        return lnk


def _map_shape(decl: MapDecl) -> list[Any]:
    """What a cached program assumes of a map: name, type, sizes, entries, flags."""
    spec = decl.spec()
    return [decl.name, int(spec.type), spec.key_codec.size, spec.value_codec.size,
            spec.max_entries, spec.flags]


def _records(decls: Any) -> list[type[Record]]:
    """Record types that programs write into these maps (events, keys, values)."""
    out: list[type[Record]] = []
    for decl in decls:
        for ty in (getattr(decl, "record", None), decl.key, decl.value):
            if isinstance(ty, type) and issubclass(ty, Record) and ty not in out:
                out.append(ty)
    return out


__all__ = ["Collection", "ProgramDef", "fentry", "fexit", "kprobe", "kretprobe",
           "raw_tracepoint", "socket_filter", "tc", "tp_btf", "tracepoint", "xdp"]
