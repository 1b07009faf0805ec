"""Program assembly: labels, symbolic references and map fds -> bytecode.

Instructions carry symbols (labels naming them) and references (labels or
maps they target); :func:`assemble` resolves them late, as cilium/ebpf does:

* jumps (``goto``, ``if ... goto``, ``may_goto``, ``gotol``) get pc-relative offsets;
* ``call LABEL`` becomes a bpf-to-bpf call, ``r1 = LABEL ll`` a function pointer;
* ``r1 = MAP ll`` / ``ld_map_fd(R1, "name")`` get the map's fd, and
  ``ld_map_value`` the fd plus the value offset.

A jump too far for its 16-bit offset is an error naming the label, unless
``long_jumps=True``: then ``goto`` becomes ``gotol`` and a far conditional
jump becomes the inverted condition over a ``gotol``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Mapping, Protocol, Union

from .errors import BPFError
from .isa import (
    CALL,
    GOTOL,
    JA,
    LD_IMM64,
    Class,
    Instruction,
    OpCode,
    PseudoCall,
    PseudoLoad,
    encode,
    gotol,
    ja,
)

__all__ = ["AssemblyError", "Program", "assemble"]

_INT16 = range(-0x8000, 0x8000)
_INT32 = range(-(1 << 31), 1 << 31)


class AssemblyError(BPFError):
    """A program that cannot be assembled; names the instruction's source."""

    exit_code = 2


class HasFileno(Protocol):
    def fileno(self) -> int: ...


MapRef = Union[int, HasFileno]


def _where(insn: Instruction) -> str:
    return f"{insn.source}: " if insn.source else ""


def _symbols(insns: list[Instruction]) -> dict[str, int]:
    """Label -> index of the instruction it names."""
    table: dict[str, int] = {}
    for i, insn in enumerate(insns):
        if insn.symbol is None:
            continue
        if insn.symbol in table:
            raise AssemblyError(f"{_where(insn)}label {insn.symbol!r} defined twice")
        table[insn.symbol] = i
    return table


def _positions(insns: list[Instruction]) -> list[int]:
    """Slot number of every instruction, plus the total at the end."""
    out, pc = [], 0
    for insn in insns:
        out.append(pc)
        pc += insn.slots
    out.append(pc)
    return out


def _is_labelled_jump(insn: Instruction) -> bool:
    return insn.reference is not None and insn.is_jump


def _relax(insns: list[Instruction]) -> list[Instruction]:
    """Rewrite labelled jumps whose offset exceeds 16 bits into long forms."""
    far: set[int] = set()
    while True:
        expanded = _expand(insns, far)
        table = _symbols(expanded)
        pos = _positions(expanded)
        origin = _origins(insns, far)
        grew = False
        for j, insn in enumerate(expanded):
            if not _is_labelled_jump(insn) or insn.opcode == GOTOL or insn.reference not in table:
                continue
            offset = pos[table[insn.reference]] - pos[j] - 1
            if offset not in _INT16 and origin[j] not in far:
                far.add(origin[j])
                grew = True
        if not grew:
            return expanded


def _origins(insns: list[Instruction], far: set[int]) -> list[int]:
    """For each instruction of the expansion, the index of its original."""
    out: list[int] = []
    for i, insn in enumerate(insns):
        out += [i] * len(_long_form(insn) if i in far else (insn,))
    return out


def _expand(insns: list[Instruction], far: set[int]) -> list[Instruction]:
    out: list[Instruction] = []
    for i, insn in enumerate(insns):
        out += _long_form(insn) if i in far else [insn]
    return out


def _long_form(insn: Instruction) -> list[Instruction]:
    """The same jump with a 32-bit reach."""
    target, meta = insn.reference, {"source": insn.source}
    if insn.opcode == JA:
        return [replace(gotol(target), symbol=insn.symbol, **meta)]
    far = replace(gotol(target), **meta)
    code = insn.op
    if code.jump_op.inverse is not None:  # if !cond goto +1; gotol target
        inverse = OpCode.jump(code.jump_op.inverse, code.source, jmp32=code.cls == Class.JMP32)
        skip = replace(insn, opcode=inverse, off=1, reference=None)
        return [skip, far]
    # no inverse (jset): if cond goto +1; goto +1; gotol target
    taken = replace(insn, off=1, reference=None)
    return [taken, replace(ja(1), **meta), far]


def assemble(insns: Iterable[Instruction], *, maps: Mapping[str, MapRef] | None = None,
             long_jumps: bool = False) -> list[Instruction]:
    """Resolve every reference in *insns*; returns instructions ready to encode.

    *maps* maps names to fds (ints or objects with ``fileno()``).  Symbols and
    references are kept as metadata on the result.
    """
    insns = list(insns)
    maps = maps or {}
    if long_jumps:
        insns = _relax(insns)
    symbols = _symbols(insns)
    pos = _positions(insns)
    out: list[Instruction] = []
    for i, insn in enumerate(insns):
        if insn.internal:
            raise AssemblyError(f"{_where(insn)}{insn.internal}: a kernel-internal form, "
                                "read from a listing; it cannot be loaded")
        if insn.reference is not None:
            insn = _resolve(insn, pos[i], symbols, pos, maps)
        out.append(insn)
    return out


def _resolve(insn: Instruction, pc: int, symbols: dict[str, int], pos: list[int],
             maps: Mapping[str, MapRef]) -> Instruction:
    ref = insn.reference
    if ref in symbols:
        offset = pos[symbols[ref]] - pc - 1
        if insn.is_jump:
            reach = _INT32 if insn.opcode == GOTOL else _INT16
            if offset not in reach:
                raise AssemblyError(
                    f"{_where(insn)}jump to {ref!r} is {offset} instructions away, beyond "
                    f"the 16-bit offset; use gotol or assemble with long_jumps=True")
            return insn.with_jump_offset(offset)
        if insn.opcode == CALL and insn.src == PseudoCall.CALL:
            return replace(insn, imm=offset)
        if insn.opcode == LD_IMM64 and insn.src in (PseudoLoad.NONE, PseudoLoad.FUNC):
            return replace(insn, src=PseudoLoad.FUNC, imm=offset & 0xFFFF_FFFF)
        raise AssemblyError(f"{_where(insn)}{ref!r} is a label; this instruction cannot refer to one")
    if ref in maps:
        if insn.opcode != LD_IMM64:
            raise AssemblyError(f"{_where(insn)}{ref!r} is a map; only ld_imm64 can load it")
        fd = _fd(maps[ref])
        if insn.src == PseudoLoad.NONE:
            return replace(insn, src=PseudoLoad.MAP_FD, imm=fd & 0xFFFF_FFFF)
        if insn.src in (PseudoLoad.MAP_FD, PseudoLoad.MAP_VALUE):
            return replace(insn, imm=(insn.imm & ~0xFFFF_FFFF) | (fd & 0xFFFF_FFFF))
        raise AssemblyError(f"{_where(insn)}pseudo source {insn.src} cannot take map {ref!r}")
    kind = "map or label" if insn.opcode == LD_IMM64 else "label"
    raise AssemblyError(f"{_where(insn)}unknown {kind} {ref!r}")


def _fd(ref: MapRef) -> int:
    return ref.fileno() if hasattr(ref, "fileno") else int(ref)


class Program:
    """A growing instruction list with labels, for building programs in Python.

    >>> p = Program()
    >>> p.emit(Mov.imm(R0, 0))
    >>> p.label("out")
    >>> p.emit(exit_())
    """

    def __init__(self, insns: Iterable[Instruction] = ()) -> None:
        self.insns: list[Instruction] = list(insns)
        self._label: str | None = None

    def label(self, name: str) -> None:
        """Name the next emitted instruction."""
        if self._label is not None:
            raise AssemblyError(f"label {self._label!r} is still waiting for an instruction")
        self._label = name

    def emit(self, *insns: Instruction) -> None:
        for insn in insns:
            if self._label is not None:
                insn = replace(insn, symbol=self._label)
                self._label = None
            self.insns.append(insn)

    def __len__(self) -> int:
        return len(self.insns)

    def assemble(self, **kwargs: object) -> list[Instruction]:
        if self._label is not None:
            raise AssemblyError(f"label {self._label!r} names no instruction")
        return assemble(self.insns, **kwargs)  # type: ignore[arg-type]

    def bytes(self, **kwargs: object) -> bytes:
        return encode(self.assemble(**kwargs))

