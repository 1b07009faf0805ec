"""Register allocation: liveness over the CFG, greedy coloring, spilling.

Virtual registers get r0-r9 so that no two values live at the same time
share a register.  Interference is exact per instruction (a value defined
at an instruction interferes with everything live after it), and call
sites count as definitions of r0-r5, so values live across a helper call
land in r6-r9.  When ten registers are not enough, a value is spilled: each
definition stores it to an 8-byte stack slot and each use reloads it into a
short-lived register, then allocation starts over.  Moves between a value
and a register it can share are coalesced away.
"""

from __future__ import annotations

from dataclasses import replace

from ..isa import EXIT, GOTOL, JA, Class, Instruction, Mode, Size, SourceLocation
from .errors import DSLError
from .frame import Frame, StackOverflow
from .ir import FP, MOV64_X, Item, Label, Op, Operand, VReg, defs_uses

#: registers in the order short-lived values take them; r6-r9 survive calls
_ORDER = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)


class AllocationError(DSLError):
    """A program the allocator cannot fit in BPF's registers."""


def _index(ops: list[Op], labels: dict[str, int]) -> list[tuple[int, ...]]:
    """Successors of each op."""
    succ: list[tuple[int, ...]] = []
    n = len(ops)
    for i, op in enumerate(ops):
        if op.opcode == EXIT:
            succ.append(())
        elif op.is_branch:
            target = labels[op.reference] if op.reference is not None else i + 1 + op.off
            nxt = (target,) if op.is_unconditional else (i + 1, target)
            succ.append(tuple(t for t in nxt if t < n))
        else:
            succ.append((i + 1,) if i + 1 < n else ())
    return succ


class _Liveness:
    """Per-instruction live-out sets and per-variable interference masks."""

    def __init__(self, ops: list[Op], labels: dict[str, int]) -> None:
        self.var_ids: dict[Operand, int] = {r: r for r in range(11)}
        du = [defs_uses(op) for op in ops]
        defs = [self._mask(d) for d, _ in du]
        uses = [self._mask(u) for _, u in du]
        succ = _index(ops, labels)
        n = len(ops)
        live_in, live_out = [0] * n, [0] * n
        changed = True
        while changed:
            changed = False
            for i in range(n - 1, -1, -1):
                out = 0
                for s in succ[i]:
                    out |= live_in[s]
                new_in = uses[i] | (out & ~defs[i])
                if out != live_out[i] or new_in != live_in[i]:
                    live_out[i], live_in[i], changed = out, new_in, True
        self.live_in0 = live_in[0] if n else 0
        # interference: bit i of busy[v] when v is defined at i or live after it
        self.busy = [0] * len(self.var_ids)
        #: instructions that read or write each variable (what spilling it costs)
        self.refs = [0] * len(self.var_ids)
        for i in range(n):
            m = defs[i] | uses[i]
            while m:
                low = m & -m
                self.refs[low.bit_length() - 1] += 1
                m ^= low
            m, bit = live_out[i] | defs[i], 1 << i
            while m:
                low = m & -m
                self.busy[low.bit_length() - 1] |= bit
                m ^= low

    def _mask(self, regs: tuple[Operand, ...]) -> int:
        m = 0
        for r in regs:
            if r == FP:
                continue
            idx = self.var_ids.get(r)
            if idx is None:
                idx = self.var_ids[r] = len(self.var_ids)
            m |= 1 << idx
        return m


def _mov_partners(ops: list[Op]) -> dict[VReg, list[Operand]]:
    partners: dict[VReg, list[Operand]] = {}
    for op in ops:
        if op.opcode == MOV64_X and op.off == 0:
            for a, b in ((op.dst, op.src), (op.src, op.dst)):
                if isinstance(a, VReg):
                    partners.setdefault(a, []).append(b)
    return partners


def _color(ops: list[Op], labels: dict[str, int]) -> dict[VReg, int] | VReg:
    """A register for every vreg, or the value to spill when one does not fit."""
    live = _Liveness(ops, labels)
    stray = [v for v, i in live.var_ids.items() if isinstance(v, VReg) and live.live_in0 >> i & 1]
    if stray:
        raise AllocationError(f"{stray[0]!r} is read before any value is assigned to it",
                              at=_site(ops, stray[0]))
    occupied = [live.busy[r] for r in range(10)]
    partners = _mov_partners(ops)
    vregs = [(v, i) for v, i in live.var_ids.items() if isinstance(v, VReg)]
    vregs.sort(key=lambda vi: (live.busy[vi[1]] & -live.busy[vi[1]]).bit_length())
    color: dict[VReg, int] = {}
    for v, i in vregs:
        mask = live.busy[i]
        prefs = [color.get(p, p) for p in partners.get(v, ())]
        # a register an uncolored partner can share too, so that the move between them goes away
        shared = [r for p in prefs if isinstance(p, VReg) for r in _ORDER
                  if not occupied[r] & (mask | live.busy[live.var_ids[p]])]
        for r in (*[p for p in prefs if isinstance(p, int) and p < 10], *shared, *_ORDER):
            if not occupied[r] & mask:
                color[v] = r
                occupied[r] |= mask
                break
        else:
            return _victim(v, mask, color, live)
    return color


def _victim(v: VReg, mask: int, color: dict[VReg, int], live: _Liveness) -> VReg:
    """The value to spill when *v* finds no register: of *v* and the values
    holding registers where it lives, the one live longest per instruction
    that reads or writes it (spill temporaries are as short as they get;
    spilling them again frees nothing)."""
    holders = [u for u in color if live.busy[live.var_ids[u]] & mask]
    candidates = [u for u in (*holders, v) if not u.name.endswith(".spill")]

    def span_per_ref(u: VReg) -> float:
        k = live.var_ids[u]
        return bin(live.busy[k]).count("1") / max(live.refs[k], 1)

    return max(candidates, key=span_per_ref, default=v)


def _site(items: list[Item], v: VReg) -> SourceLocation | None:
    """The source of the first instruction that mentions *v*."""
    for op in items:
        if isinstance(op, Op) and op.source and v in (op.dst, op.src):
            return op.source
    return None


def _spill(items: list[Item], victim: VReg, frame: Frame, fresh) -> list[Item]:
    """Rewrite so that *victim* lives in a stack slot between its uses."""
    try:
        slot = frame.alloc(8, what=f"spilling {victim!r}")
    except StackOverflow as err:
        raise StackOverflow(f"{err.message}; more values are live at once "
                            "than registers and stack can hold", at=_site(items, victim)) from None
    out: list[Item] = []
    # a run of adjacent instructions that mention the victim shares one temporary:
    # one reload before the run, one store after its last definition
    tmp: VReg | None = None
    stored = True

    def store() -> None:
        nonlocal stored
        if not stored:
            out.append(Op(Class.STX | Mode.MEM | Size.DW, FP, tmp, slot, source=out[-1].source))
            stored = True

    for item in items:
        d, u = defs_uses(item) if isinstance(item, Op) else ((), ())
        if victim not in d and victim not in u:
            store()
            tmp = None
            out.append(item)
            continue
        if tmp is None:
            tmp = fresh(f"{victim.name or 'v'}.spill")
            if victim in u:
                out.append(Op(Class.LDX | Mode.MEM | Size.DW, tmp, FP, slot, source=item.source))
        if item.is_branch:
            store()  # the slot must be current wherever the jump lands
        out.append(Op(item.opcode, tmp if item.dst is victim else item.dst,
                      tmp if item.src is victim else item.src, item.off, item.imm,
                      item.reference, item.source, item.nargs))
        stored = stored and victim not in d
    store()
    return out


def allocate(items: list[Item], frame: Frame, fresh) -> list[Instruction]:
    """Instructions with physical registers for *items*; labels become symbols.

    *fresh(name)* makes a new VReg (for spill temporaries).
    """
    items = _prune(items)
    while True:
        ops, labels = _split(items)
        result = _color(ops, labels)
        if isinstance(result, dict):
            return _lower(items, result)
        if result.name.endswith(".spill"):
            op = next(o for o in ops if result in defs_uses(o)[0] + defs_uses(o)[1])
            raise AllocationError("more values are live here than BPF has registers", at=op.source)
        items = _spill(items, result, frame, fresh)


def _prune(items: list[Item]) -> list[Item]:
    """Drop instructions no path reaches (the verifier rejects them)."""
    ops, labels = _split(items)
    succ = _index(ops, labels)
    reached, todo = set(), [0] if ops else []
    while todo:
        i = todo.pop()
        if i not in reached:
            reached.add(i)
            todo.extend(succ[i])
    out, k = [], 0
    for item in items:
        if isinstance(item, Label):
            out.append(item)
        else:
            if k in reached:
                out.append(item)
            k += 1
    return out


def _split(items: list[Item]) -> tuple[list[Op], dict[str, int]]:
    ops: list[Op] = []
    labels: dict[str, int] = {}
    for item in items:
        if isinstance(item, Label):
            labels[item.name] = len(ops)
        else:
            ops.append(item)
    return ops, labels


def _reg(operand: Operand, color: dict[VReg, int]) -> int:
    return color[operand] if isinstance(operand, VReg) else operand


def _lower(items: list[Item], color: dict[VReg, int]) -> list[Instruction]:
    """Physical instructions; drops self-moves and jumps to the next instruction."""
    seq: list[Item] = []
    for item in items:
        if isinstance(item, Label):
            seq.append(item)
            continue
        d, s = _reg(item.dst, color), _reg(item.src, color)
        if item.opcode == MOV64_X and item.off == 0 and d == s:
            continue
        seq.append(item.lower(d, s, None))
    seq = _drop_jumps_to_next(seq)
    return _attach_labels(seq)


def _drop_jumps_to_next(seq: list[Item]) -> list[Item]:
    out: list[Item] = []
    for k, item in enumerate(seq):
        if isinstance(item, Instruction) and item.opcode in (JA, GOTOL) and item.reference:
            following = []
            for nxt in seq[k + 1:]:
                if not isinstance(nxt, Label):
                    break
                following.append(nxt.name)
            if item.reference in following:
                continue
        out.append(item)
    return out


def _attach_labels(seq: list[Item]) -> list[Instruction]:
    """Labels -> the ``symbol`` of the next instruction; extra labels become aliases."""
    out: list[Instruction] = []
    alias: dict[str, str] = {}
    pending: list[str] = []
    for item in seq:
        if isinstance(item, Label):
            pending.append(item.name)
            continue
        if pending:
            for name in pending[1:]:
                alias[name] = pending[0]
            item = replace(item, symbol=pending[0])
            pending = []
        out.append(item)
    jumps = [i for i in out if i.reference in pending]  # labels at the end nothing jumps to are dropped
    if jumps:
        raise AllocationError(f"label {pending[0]!r} is at the end of the program: "
                              "every path must end in return_()", at=jumps[0].source)
    return [replace(i, reference=alias[i.reference]) if i.reference in alias else i for i in out]
