"""Program BTF for a list of instructions: func_info for each function, line_info from sources.

The kernel wants func_info for programs whose functions are called back by
helpers (``bpf_loop``, ``bpf_for_each_map_elem`` ...), and with line_info
its verifier log prints the source line of each instruction.  Functions are
the entry and every target of a bpf-to-bpf call or function pointer; lines
come from each instruction's recorded source (assembler or eDSL line).
"""

from __future__ import annotations

import linecache
from typing import Sequence

from ..isa import CALL, LD_IMM64, Instruction, PseudoCall, PseudoLoad
from .kinds import IntEncoding, Linkage
from .types import Func, FuncProto, Int
from .writer import BTFBuilder, ProgramBTF


def function_starts(insns: Sequence[Instruction]) -> dict[int, str]:
    """Slot -> name of every function: slot 0 and each call or function-pointer target."""
    starts: dict[int, str] = {0: insns[0].symbol or "main"} if insns else {}
    symbol_at: dict[int, str | None] = {}
    pc = 0
    for insn in insns:
        symbol_at[pc] = insn.symbol
        pc += insn.slots
    pc = 0
    for insn in insns:
        calls = insn.opcode == CALL and insn.src == PseudoCall.CALL
        points = insn.opcode == LD_IMM64 and insn.src == PseudoLoad.FUNC
        if calls or points:
            target = pc + 1 + _signed32(insn.imm)
            starts.setdefault(target, symbol_at.get(target) or f"func_{target}")
        pc += insn.slots
    return dict(sorted(starts.items()))


def has_functions(insns: Sequence[Instruction]) -> bool:
    return len(function_starts(insns)) > 1


def program_btf(insns: Sequence[Instruction]) -> ProgramBTF:
    """The BTF blob, func_info and line_info for *insns* (resolved, as loaded)."""
    builder = BTFBuilder()
    long_id = builder.add(Int("long", 8, 64, 0, IntEncoding.SIGNED))
    proto = builder.add(FuncProto(long_id, ()))
    starts = function_starts(insns)
    for slot, name in starts.items():
        builder.func_info(slot, builder.add(Func(name, proto, Linkage.STATIC)))
    lines = _lines(insns, starts)
    if all(slot in lines for slot in starts):  # the kernel wants a line at every function start
        for slot, (file, line) in lines.items():
            builder.line_info(slot, file, line, source=linecache.getline(file, line).strip())
    return builder.build()


def _lines(insns: Sequence[Instruction], starts: dict[int, str]) -> dict[int, tuple[str, int]]:
    """Slot -> (file, line) wherever the line changes, and at each function start."""
    out: dict[int, tuple[str, int]] = {}
    last = None
    pc = 0
    for insn in insns:
        where = (insn.source.file, insn.source.line) if insn.source else last
        if where is not None and (where != last or pc in starts):
            out[pc] = where
            last = where
        pc += insn.slots
    return out


def _signed32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value
