"""Checks on finished instruction listings (one function, labels as symbols)."""

from __future__ import annotations

from pybpfasm.dsl.ir import Op, defs_uses
from pybpfasm.isa import CALL, EXIT, GOTOL, JA, Class, Instruction

ARG_REGS = frozenset(range(1, 6))


def _successors(insns: list[Instruction]) -> list[tuple[int, ...]]:
    where = {insn.symbol: i for i, insn in enumerate(insns) if insn.symbol}
    succ = []
    for i, insn in enumerate(insns):
        nxt = (i + 1,) if i + 1 < len(insns) else ()
        if insn.opcode == EXIT:
            succ.append(())
        elif insn.is_jump and insn.reference in where:
            target = where[insn.reference]
            succ.append((target,) if insn.opcode in (JA, GOTOL) else (*nxt, target))
        else:
            succ.append(nxt)
    return succ


def reads_of_clobbered_registers(insns: list[Instruction]) -> list[tuple[int, int]]:
    """(instruction index, register) where r1-r5 are read while a call may have clobbered them.

    A value kept in r1-r5 across a call shows up here; the arguments a call
    itself reads are not checked (their count is not in the listing).
    """
    succ = _successors(insns)
    clobbered_in: list[frozenset[int] | None] = [None] * len(insns)
    clobbered_in[0] = frozenset()
    todo, bad = [0], set()
    while todo:
        i = todo.pop()
        state = clobbered_in[i]
        insn = insns[i]
        defs, uses = defs_uses(Op(insn.opcode, insn.dst, insn.src, insn.off, insn.imm))
        bad.update((i, r) for r in uses if r in state)
        out = (state | ARG_REGS) if insn.opcode == CALL else state - set(defs)
        for s in succ[i]:
            merged = out if clobbered_in[s] is None else clobbered_in[s] | out
            if merged != clobbered_in[s]:
                clobbered_in[s] = merged
                todo.append(s)
    return sorted(bad)


def stack_stores(insns: list[Instruction]) -> int:
    """Stores through r10 (spills, among others)."""
    return sum(1 for insn in insns if insn.cls in (Class.ST, Class.STX) and insn.dst == 10)


def unreachable(insns: list[Instruction]) -> list[int]:
    """Indexes of instructions no path from the first one reaches (functions are roots too)."""
    succ = _successors(insns)
    roots = [0] + [i for i, insn in enumerate(insns) if insn.symbol and any(
        c.is_call and c.reference == insn.symbol for c in insns)]
    seen: set[int] = set()
    todo = roots
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(succ[i])
    return [i for i in range(len(insns)) if i not in seen]


def conditional_jumps(insns: list[Instruction]) -> int:
    return sum(1 for insn in insns if insn.is_jump and insn.opcode not in (JA, GOTOL))
