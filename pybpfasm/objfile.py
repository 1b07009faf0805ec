"""BPF object files (what clang and libbpf use): read them, and load them with our own loader.

:func:`read_object` gives every executable section as instructions whose
relocations became references (``r1 = counts ll``, ``call twice``), the
maps of ``.maps`` (BTF definitions) or ``maps`` (``struct bpf_map_def``),
the global data sections and the license.  :func:`load_object` creates the
maps, loads each program with its subprograms and returns them by name::

    with load_object("prog.o") as obj:
        obj.programs["xdp_prog"].test_run(packet)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import elf
from .errors import BPFError
from .isa import CALL, LD_IMM64, DecodeError, Instruction, PseudoCall, PseudoLoad, decode

if TYPE_CHECKING:
    from .btf.reader import BTF
    from .maps import Map
    from .prog import Program

__all__ = ["BPFObject", "Function", "LoadedObject", "MapDef", "ObjectError", "load_object",
           "program_type", "read_object"]

#: libbpf's SEC() prefixes -> program type name (enum bpf_prog_type without BPF_PROG_TYPE_)
SECTION_TYPES = (
    ("socket", "SOCKET_FILTER"), ("xdp", "XDP"), ("tc", "SCHED_CLS"), ("classifier", "SCHED_CLS"),
    ("action", "SCHED_ACT"), ("tracepoint/", "TRACEPOINT"), ("tp/", "TRACEPOINT"),
    ("raw_tracepoint/", "RAW_TRACEPOINT"), ("raw_tp/", "RAW_TRACEPOINT"), ("tp_btf/", "TRACING"),
    ("kprobe/", "KPROBE"),
    ("kretprobe/", "KPROBE"), ("perf_event", "PERF_EVENT"), ("cgroup_skb/", "CGROUP_SKB"),
    ("cgroup/sock", "CGROUP_SOCK"), ("sockops", "SOCK_OPS"), ("sk_skb", "SK_SKB"), ("sk_msg", "SK_MSG"),
    ("flow_dissector", "FLOW_DISSECTOR"), ("lwt_in", "LWT_IN"), ("lwt_out", "LWT_OUT"),
    ("lwt_xmit", "LWT_XMIT"), ("sk_lookup", "SK_LOOKUP"), ("syscall", "SYSCALL"),
    ("netfilter", "NETFILTER"),
)
TP_BTF_PREFIX = "tp_btf/"
MAPS_SECTION = ".maps"
LEGACY_MAPS_SECTION = "maps"
LICENSE_SECTION = "license"
SUBPROGRAM_SECTION = ".text"
_DATA_SECTION = re.compile(r"\.(data|rodata|bss)(\..*)?$")
#: struct bpf_map_def of the legacy "maps" section: type, key_size, value_size, max_entries, flags
_LEGACY_FIELDS = ("type", "key_size", "value_size", "max_entries", "map_flags")


class ObjectError(BPFError):
    """An object file this loader cannot use; names the file and what is wrong."""

    exit_code = 2


def program_type(section: str) -> str | None:
    """The program type name a section name means (libbpf's convention), or None."""
    for prefix, name in SECTION_TYPES:
        if section == prefix or (section.startswith(prefix) and (prefix.endswith("/")
                                                                 or section[len(prefix)] in "/.")):
            return name
    return None


@dataclass(frozen=True)
class MapDef:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    #: C type names of key and value from BTF, for display
    key_type: str | None = None
    value_type: str | None = None


@dataclass(frozen=True)
class Function:
    """A function symbol's instructions; a global one outside ``.text`` is a program."""

    name: str
    section: str
    start: int  # slot within its section
    insns: list[Instruction]
    is_global: bool

    @property
    def callees(self) -> list[str]:
        return [i.reference for i in self.insns if i.reference and i.opcode == CALL]


@dataclass
class BPFObject:
    source: str
    byteorder: str
    #: executable section -> its instructions, function names as symbols, relocations as references
    sections: dict[str, list[Instruction]]
    functions: dict[str, Function]
    maps: list[MapDef]
    #: global data sections (.data, .rodata, .bss) -> contents
    data: dict[str, bytes]
    license: str
    btf: BTF | None = None
    #: global variable names by (data section, offset), for display
    variables: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def programs(self) -> list[Function]:
        return [f for f in self.functions.values()
                if f.is_global and f.section != SUBPROGRAM_SECTION and program_type(f.section)]


def read_object(data: bytes, source: str) -> BPFObject:
    """Parse a BPF ELF object; raises :class:`ObjectError` or :class:`~pybpfasm.elf.ELFError`."""
    obj = elf.read(data, source)
    if obj.machine != elf.EM_BPF:
        raise ObjectError(f"{source}: not a BPF object (ELF machine {obj.machine})")
    return _Reader(obj, source).read()


class _Reader:
    def __init__(self, obj: elf.ELFFile, source: str) -> None:
        self.obj, self.source = obj, source
        self.btf = self._btf()

    def fail(self, message: str) -> ObjectError:
        return ObjectError(f"{self.source}: {message}")

    def _btf(self) -> BTF | None:
        index = self.obj.index(".BTF")
        if index is None:
            return None
        from .btf.errors import BTFError
        from .btf.reader import BTF

        try:
            return BTF.from_bytes(self.obj.sections[index].data, source=f"{self.source} .BTF")
        except BTFError as err:
            raise self.fail(f"bad .BTF section: {err}") from None

    def read(self) -> BPFObject:
        obj = self.obj
        license_index = obj.index(LICENSE_SECTION)
        license_ = ""
        if license_index is not None:
            license_ = obj.sections[license_index].data.split(b"\0", 1)[0].decode(errors="replace")
        data = {s.name: (bytes(s.size) if s.type == elf.SHT_NOBITS else s.data)
                for s in obj.sections if s.flags & elf.SHF_ALLOC and not s.executable
                and _DATA_SECTION.match(s.name)}
        variables = {(self._section_name(s.shndx), s.value): s.name for s in obj.symbols
                     if s.type == elf.STT_OBJECT and self._section_name(s.shndx) in data}
        maps = self._maps()
        sections: dict[str, list[Instruction]] = {}
        functions: dict[str, Function] = {}
        for index, sec in enumerate(obj.sections):
            if sec.executable and sec.size:
                insns, funcs = self._section(index, sec, {m.name for m in maps}, data)
                sections[sec.name] = insns
                for f in funcs:
                    if f.name in functions:
                        raise self.fail(f"function {f.name!r} is defined twice")
                    functions[f.name] = f
        return BPFObject(self.source, obj.byteorder, sections, functions, maps, data, license_,
                         self.btf, variables)

    def _section_name(self, index: int) -> str | None:
        return self.obj.sections[index].name if 0 < index < len(self.obj.sections) else None

    # -- instructions -----------------------------------------------------------
    def _section(self, index: int, sec: elf.Section, map_names: set[str],
                 data: dict[str, bytes]) -> tuple[list[Instruction], list[Function]]:
        try:
            insns = decode(sec.data, self.obj.byteorder)
        except DecodeError as err:
            raise self.fail(f"section {sec.name}: {err}") from None
        slots, pos = [], 0
        for insn in insns:
            slots.append(pos)
            pos += insn.slots
        at = {slot: i for i, slot in enumerate(slots)}
        starts = sorted({s.value // 8: s for s in self.obj.symbols
                         if s.type == elf.STT_FUNC and s.shndx == index}.items())
        if not starts:  # a section without function symbols is one function named after it
            starts = [(0, elf.Symbol(sec.name, 0, len(sec.data), elf.STB_GLOBAL, elf.STT_FUNC, index))]
        names = {slot: sym.name for slot, sym in starts}
        for reloc in self.obj.relocations.get(index, []):
            i = at.get(reloc.offset // 8)
            if i is None or reloc.offset % 8:
                raise self.fail(f"section {sec.name}: relocation at byte {reloc.offset} is not "
                                "at an instruction")
            insns[i] = self._relocate(sec.name, insns[i], self.obj.symbols[reloc.symbol]
                                      if reloc.symbol else None, reloc, map_names, data)
        for i, insn in enumerate(insns):  # calls within the section that need no relocation
            if insn.opcode == CALL and insn.src == PseudoCall.CALL and insn.reference is None:
                target = names.get(slots[i] + 1 + insn.imm)
                if target is None:
                    raise self.fail(f"section {sec.name}: call at slot {slots[i]} lands on no function")
                insns[i] = replace(insn, imm=-1, reference=target)
        functions = []
        bounds = [slot for slot, _ in starts] + [pos]
        for (slot, sym), end in zip(starts, bounds[1:]):
            if slot not in at:
                raise self.fail(f"function {sym.name!r} does not start at an instruction")
            body = [insns[i] for i in range(at[slot], len(insns)) if slots[i] < end]
            body[0] = replace(body[0], symbol=sym.name)
            functions.append(Function(sym.name, sec.name, slot, body, sym.bind == elf.STB_GLOBAL))
        first = at[starts[0][0]]
        named = insns[:first] + [insn for f in functions for insn in f.insns]
        return named, functions

    def _relocate(self, section: str, insn: Instruction, sym: elf.Symbol | None, reloc: elf.Relocation,
                  map_names: set[str], data: dict[str, bytes]) -> Instruction:
        where = f"section {section}: relocation at byte {reloc.offset}"
        if sym is None:
            raise self.fail(f"{where} names no symbol")
        target = self._section_name(sym.shndx)
        if reloc.type == elf.R_BPF_64_32 and insn.opcode == CALL and insn.src == PseudoCall.CALL:
            if sym.type == elf.STT_FUNC:
                return replace(insn, imm=-1, reference=sym.name)
            name = self._function_at(sym.shndx, sym.value // 8 + insn.imm + 1)
            return replace(insn, imm=-1, reference=name)
        if reloc.type != elf.R_BPF_64_64 or insn.opcode != LD_IMM64:
            raise self.fail(f"{where}: type {reloc.type} on opcode 0x{insn.opcode:02x} is not supported")
        if target in (MAPS_SECTION, LEGACY_MAPS_SECTION):
            name = sym.name if sym.type != elf.STT_SECTION else self._map_at(sym.shndx, insn.imm)
            if name not in map_names:
                raise self.fail(f"{where}: {name!r} is not a map of {target}")
            return replace(insn, src=PseudoLoad.NONE, imm=0, reference=name)
        if target in data:
            offset = (0 if sym.type == elf.STT_SECTION else sym.value) + (insn.imm & 0xFFFF_FFFF)
            return replace(insn, src=PseudoLoad.MAP_VALUE, imm=offset << 32, reference=target)
        if sym.type == elf.STT_FUNC:
            return replace(insn, src=PseudoLoad.FUNC, imm=0, reference=sym.name)
        raise self.fail(f"{where}: symbol {sym.name!r} in {target!r} is neither a map, global data "
                        "nor a function")

    def _function_at(self, shndx: int, slot: int) -> str:
        for s in self.obj.symbols:
            if s.type == elf.STT_FUNC and s.shndx == shndx and s.value == 8 * slot:
                return s.name
        raise self.fail(f"a call lands on no function (section {self._section_name(shndx)}, slot {slot})")

    def _map_at(self, shndx: int, offset: int) -> str:
        for s in self.obj.symbols:
            if s.type == elf.STT_OBJECT and s.shndx == shndx and s.value == offset:
                return s.name
        raise self.fail(f"no map at offset {offset} of {self._section_name(shndx)}")

    # -- maps -------------------------------------------------------------------
    def _maps(self) -> list[MapDef]:
        out = []
        legacy = self.obj.index(LEGACY_MAPS_SECTION)
        if legacy is not None:
            out += self._legacy_maps(legacy)
        if self.obj.index(MAPS_SECTION) is not None:
            from .btf.errors import BTFError

            try:
                out += self._btf_maps()
            except BTFError as err:
                raise self.fail(f"bad .BTF section: {str(err).split(': ', 1)[-1]}") from None
        return out

    def _legacy_maps(self, index: int) -> list[MapDef]:
        body = self.obj.sections[index].data
        out = []
        for sym in self.obj.symbols:
            if sym.shndx != index or sym.type not in (elf.STT_OBJECT, elf.STT_NOTYPE) or not sym.name:
                continue
            raw = body[sym.value: sym.value + 20]
            if len(raw) < 20:
                raise self.fail(f"map {sym.name!r}: struct bpf_map_def runs past the maps section")
            values = [int.from_bytes(raw[k: k + 4], self.obj.byteorder) for k in range(0, 20, 4)]
            out.append(MapDef(sym.name, *values))
        return out

    def _btf_maps(self) -> list[MapDef]:
        from .btf.types import Array, Datasec, Ptr, Struct, Var

        btf = self.btf
        if btf is None:
            raise self.fail(f"a {MAPS_SECTION} section needs .BTF to describe its maps (build with -g)")
        datasecs = [t for _, t in btf.types() if isinstance(t, Datasec) and t.name == MAPS_SECTION]
        if not datasecs:
            raise self.fail(f".BTF has no DATASEC {MAPS_SECTION}")
        out = []
        for info in datasecs[0].vars:
            var = btf.type(info.type_id)
            if not isinstance(var, Var):
                raise self.fail(f"{MAPS_SECTION} of .BTF holds a {type(var).__name__}, not a variable")
            struct_ = btf.type(btf.resolve(var.type_id))
            if not isinstance(struct_, Struct):
                raise self.fail(f"map {var.name!r}: its definition is not a struct")
            fields: dict[str, int] = {}
            types: dict[str, str] = {}
            for member in struct_.members:
                ptr = btf.type(btf.resolve(member.type_id))
                if not isinstance(ptr, Ptr):
                    raise self.fail(f"map {var.name!r}: member {member.name!r} is not a pointer")
                target = btf.type(ptr.type_id) if ptr.type_id else None
                if member.name in ("key", "value"):
                    fields[f"{member.name}_size"] = btf.sizeof(ptr.type_id)
                    types[member.name] = btf.type_name(ptr.type_id)
                elif isinstance(target, Array):
                    fields[member.name] = target.nelems
                else:
                    raise self.fail(f"map {var.name!r}: member {member.name!r} is not supported")
            unknown = set(fields) - {"type", "key_size", "value_size", "max_entries", "map_flags"}
            if unknown:
                raise self.fail(f"map {var.name!r}: {', '.join(sorted(unknown))} not supported")
            out.append(MapDef(var.name, fields.get("type", 0), fields.get("key_size", 0),
                              fields.get("value_size", 0), fields.get("max_entries", 0),
                              fields.get("map_flags", 0), types.get("key"), types.get("value")))
        return out


# -- loading --------------------------------------------------------------------
@dataclass
class LoadedObject:
    """The maps and programs of a loaded object, by name. Owns them: ``close()`` or ``with``."""

    maps: dict[str, Map] = field(default_factory=dict)
    programs: dict[str, Program] = field(default_factory=dict)

    def close(self) -> None:
        for owner in (*self.programs.values(), *self.maps.values()):
            owner.close()
        self.programs.clear()
        self.maps.clear()

    def __enter__(self) -> LoadedObject:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def load_object(path: str | Path) -> LoadedObject:
    """Create the maps of the object at *path* and load its programs (subprograms linked in)."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ObjectError(f"cannot read {path}: {err.strerror}") from None
    obj = read_object(data, path)
    if not obj.programs:
        raise ObjectError(f"{path}: no program sections (xdp, socket, tc, tracepoint/..., ...)")
    loaded = LoadedObject()
    try:
        _create_maps(obj, loaded)
        for prog in obj.programs:
            loaded.programs[prog.name] = _load_program(obj, prog, loaded.maps)
    except BaseException:
        loaded.close()
        raise
    return loaded


def _create_maps(obj: BPFObject, loaded: LoadedObject) -> None:
    from .maps import MapSpec, MapType

    for m in obj.maps:
        try:
            kind = MapType(m.type)
        except ValueError:
            raise ObjectError(f"{obj.source}: map {m.name!r} has unknown type {m.type}") from None
        loaded.maps[m.name] = MapSpec(kind, m.key_size, m.value_size, m.max_entries, m.flags,
                                      name=m.name).create()
    for name, contents in obj.data.items():
        if not contents:
            continue
        data_map = MapSpec(MapType.ARRAY, 4, len(contents), 1, name=name.lstrip(".")).create()
        loaded.maps[name] = data_map
        data_map[0] = contents


def _load_program(obj: BPFObject, prog: Function, maps: dict[str, Map]) -> Program:
    from .prog import ProgramSpec, ProgType

    insns = list(prog.insns)
    todo, linked = list(prog.callees), {prog.name}
    while todo:
        name = todo.pop()
        if name in linked:
            continue
        callee = obj.functions.get(name)
        if callee is None:
            raise ObjectError(f"{obj.source}: {prog.name} calls {name!r}, which the object lacks")
        linked.add(name)
        insns += callee.insns
        todo += callee.callees
    options = {"maps": maps, "license": obj.license or "GPL", "name": prog.name}
    if prog.section.startswith(TP_BTF_PREFIX):  # attach target named by the section, in kernel BTF
        from .link.tp_btf import tp_btf_spec

        return tp_btf_spec(prog.section[len(TP_BTF_PREFIX):], insns, **options).load()
    return ProgramSpec(ProgType[program_type(prog.section)], insns, **options).load()
