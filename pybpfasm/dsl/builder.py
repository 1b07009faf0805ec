"""The staged builder: Python code runs once and emits BPF instructions.

::

    b = Builder("xdp")
    ctx = b.entry()                         # r1, the program's context
    with b.if_(ctx.data_end - ctx.data < 14):
        b.return_(XDP_DROP)
    b.return_(XDP_PASS)
    insns = b.finish()                      # registers allocated, labels resolved

Python loops unroll, Python functions are macros, ``with b.if_(cond):`` /
``with b.else_():`` emit branches, ``for i in b.range(n):`` emits a bounded
loop.  Values live in virtual registers until :meth:`finish` allocates real
ones.  Every instruction records the user's file:line (the first stack frame
outside the library), so verifier errors point at the Python line; build
errors start with it too (:mod:`.errors`).

Helpers are called by name (``b.ktime_get_ns()``).  A char array, struct or
record passed to a helper is passed by address, and a size parameter the
call leaves out after it is its size, from the helper's prototype in the
kernel's BTF: ``b.get_current_comm(ev.comm)``.
"""

from __future__ import annotations

import inspect
import re
import sys
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator, Sequence

from ..asm import assemble
from ..btf import BTF, BTFError, Kind
from ..btf.funcs import signature
from ..errors import UsageError
from ..helpers import has_helper, helper_id, helper_ids
from ..isa import (
    CALL,
    EXIT,
    JA,
    LD_IMM64,
    AluOp,
    Class,
    Instruction,
    Mode,
    OpCode,
    PseudoCall,
    PseudoLoad,
    Size,
    Source,
)
from .context import Context
from .errors import BuildError, DSLTypeError, UnknownName, close_matches, public_methods, user_location
from .frame import Frame
from .ir import FP, Item, Label, Op, Operand, VReg
from .regalloc import allocate
from .types import ArrayType, KernelType, PtrType, Scalar, Space, sizeof, u8, u32, u64
from .values import (
    Cond,
    Operandish,
    Ref,
    Value,
    Var,
    _Operators,
    aligned_widths,
    as_cond,
    describe,
    fits_imm,
    scalar_of,
)

#: helper parameters that take the size of the memory passed just before them
_SIZE_PARAM = re.compile(r"(.*_)?(size|sz|len)$")


class _Loop:
    def __init__(self, head: str, cont: str, end: str) -> None:
        self.head, self.cont, self.end = head, cont, end


class Builder:
    """Emits one BPF function: main program or a bpf-to-bpf subprogram."""

    def __init__(self, prog_type: str = "", *, btf: BTF | None = None,
                 helper_ids: Callable[[str], int] = helper_id, parent: Builder | None = None) -> None:
        self.prog_type = prog_type
        self.items: list[Item] = []
        self.frame = Frame()
        self._btf = btf
        self._helper_id = helper_ids
        self._root = parent._root if parent else self
        self._pending: list[str] = []
        self._loops: list[_Loop] = []
        self._scratch: int | None = None
        #: shared ``r0 = k; exit`` blocks: (opcode, imm) -> (label, the mov)
        self._returns: dict[tuple[int, int], tuple[str, Op]] = {}
        if parent is None:
            self._counter = 0
            self.maps: dict[str, object] = {}
            self.functions: dict[str, tuple[Builder, Callable]] = {}

    # -- plumbing ---------------------------------------------------------------
    @property
    def btf(self) -> BTF:
        if self._btf is None:
            self._btf = self._root._btf or BTF.kernel()
        return self._btf

    def _next(self) -> int:
        self._root._counter += 1
        return self._root._counter

    def vreg(self, name: str = "") -> VReg:
        return VReg(self._next(), name)

    def label(self, stem: str = "L") -> str:
        return f".{stem}{self._next()}"

    def place(self, name: str) -> None:
        """Put label *name* before the next instruction."""
        self.items.append(Label(name))

    def emit(self, op: Op) -> None:
        if op.source is None:
            op.source = user_location()
        self.items.append(op)

    def mov(self, dst: Operand, src: Operand, *, wide: bool = True) -> None:
        """``dst = src`` between registers (virtual, or physical r0-r10); see :meth:`mov_imm`."""
        self.emit(Op(OpCode.alu(AluOp.MOV, Source.X, alu32=not wide), dst, src))

    def mov_imm(self, dst: Operand, value: int) -> None:
        if fits_imm(value):
            self.emit(Op(OpCode.alu(AluOp.MOV), dst, 0, 0, value))
        elif 0 <= value < (1 << 32):
            imm = value - (1 << 32) if value >= 1 << 31 else value
            self.emit(Op(OpCode.alu(AluOp.MOV, alu32=True), dst, 0, 0, imm))
        else:
            v = value & 0xFFFF_FFFF_FFFF_FFFF
            self.emit(Op(LD_IMM64, dst, 0, 0, v - (1 << 64) if v >> 63 else v))

    def value(self, x: Operandish, ty: Scalar | PtrType = u64) -> Value:
        """*x* as a Value in a register: an int is materialised as a *ty*; a value keeps its own type."""
        if isinstance(x, (_Operators, Context)):
            return x.rvalue()
        if isinstance(x, Cond):
            raise DSLTypeError("a condition is not a value: test it with 'with b.if_(cond):'")
        if isinstance(x, bool) or not isinstance(x, int):
            raise DSLTypeError(f"cannot use {x!r} as an eDSL value")
        reg = self.vreg("k")
        self.mov_imm(reg, x)
        return Value(self, reg, ty)

    def var(self, initial: Operandish, ty: Scalar | PtrType | None = None) -> Var:
        """A mutable variable holding *initial*; assign with ``.set()`` on any path."""
        v = self.value(initial) if not isinstance(initial, int) else None
        reg = self.vreg("var")
        if v is None:
            self.mov_imm(reg, initial)
        else:
            self.mov(reg, v.reg)
        return Var(self, reg, ty or (v.ty if v is not None else u64))

    def resolve_type(self, ty):
        """A type given by name (``"struct iphdr"``) or as a type object."""
        if isinstance(ty, str):
            return KernelType.named(self.btf, ty)
        return ty

    def scratch(self) -> int:
        """An 8-byte stack slot reused by loads through bpf_probe_read_kernel."""
        if self._scratch is None:
            self._scratch = self.frame.alloc(8, what="probe-read scratch")
        return self._scratch

    def stack(self, ty, name: str = "a stack object") -> Ref:
        """Stack memory for a value of type *ty* (zeroing is the caller's choice)."""
        ty = self.resolve_type(ty)
        off = self.frame.alloc(sizeof(ty), what=name)
        return Ref(self, FP, off, ty, Space.STACK)

    def zero(self, ref: Ref) -> None:
        """Store zeros over *ref* (8 bytes at a time where aligned)."""
        pos = 0
        for width in aligned_widths(ref.size, ref.off):
            self.emit(Op(Class.ST | Mode.MEM | Size.of(width), ref.base, 0, ref.off + pos, 0))
            pos += width

    # -- arithmetic -----------------------------------------------------------------
    def binop(self, op: AluOp, lhs: _Operators, rhs: Operandish) -> Value:
        left = lhs.rvalue()
        ty = left.ty
        if isinstance(ty, PtrType):
            if op not in (AluOp.ADD, AluOp.SUB):
                raise DSLTypeError(f"pointer arithmetic allows + and -, not {op.name.lower()}")
            result_ty = ty
        else:
            result_ty = _promote(ty, 0 if op in (AluOp.LSH, AluOp.RSH) else rhs)  # a shift has its left type
        if isinstance(result_ty, Scalar) and result_ty.signed:
            op = {AluOp.DIV: AluOp.SDIV, AluOp.MOD: AluOp.SMOD, AluOp.RSH: AluOp.ARSH}.get(op, op)
        alu32 = _alu32(result_ty)
        reg = self.vreg()
        self.mov(reg, left.reg)  # a 64-bit copy coalesces; the ALU32 op zero-extends
        # the verifier rejects division by an immediate 0; by a register it is BPF's x/0 == 0, x%0 == x
        if isinstance(rhs, int) and fits_imm(rhs) and not (rhs == 0 and op.code in (AluOp.DIV.code, AluOp.MOD.code)):
            self.emit(Op(OpCode.alu(op, alu32=alu32), reg, 0, op.off, rhs))
        else:
            right = self.value(rhs)
            self.emit(Op(OpCode.alu(op, Source.X, alu32=alu32), reg, right.reg, op.off))
        return Value(self, reg, result_ty)

    def unop_neg(self, x: _Operators) -> Value:
        v = x.rvalue()
        ty = v.ty if isinstance(v.ty, PtrType) else _promote(v.ty, 0)
        reg = self.vreg()
        self.mov(reg, v.reg)
        self.emit(Op(OpCode.alu(AluOp.NEG, alu32=_alu32(ty)), reg))
        return Value(self, reg, ty)

    def byteswap(self, x: _Operators) -> Value:
        """Network to host order (or back) for a big-endian scalar."""
        v = x.rvalue()
        ty = scalar_of(v.ty)
        reg = self.vreg()
        self.mov(reg, v.reg)
        order = Source.X if sys.byteorder == "little" else Source.K  # X: to big endian, K: to little
        self.emit(Op(OpCode.alu(AluOp.SWAP, order, alu32=True), reg, 0, 0, 8 * ty.size))
        return Value(self, reg, Scalar(ty.size, ty.signed, not ty.big_endian))

    # -- memory -------------------------------------------------------------------------
    def load_type(self, ref: Ref) -> Scalar | PtrType:
        """What loading *ref* yields: a scalar, or a pointer into a space."""
        ty = ref.ty
        if isinstance(ty, KernelType) and ty.is_pointer:
            space = ref.space if ref.space in (Space.BTF, Space.KERNEL, Space.USER) else Space.KERNEL
            return PtrType(ty.pointee(), space)
        if isinstance(ty, PtrType):
            return ty
        if ref.bits:
            return Scalar(4 if ref.bits[1] <= 32 else 8)
        return scalar_of(ty)

    def load(self, ref: Ref) -> Value:
        """Read a scalar or pointer field."""
        ty = ref.ty
        result = self.load_type(ref)
        size = result.size if isinstance(result, Scalar) else 8
        if ref.bits:
            size = sizeof(ty) if not isinstance(ty, KernelType) else _unit_size(ref)
        reg = self.vreg("ld")
        if ref.space.direct:
            self.emit(Op(Class.LDX | Mode.MEM | Size.of(size), reg, ref.base, ref.off))
        else:
            self.probe_read(Ref(self, FP, self.scratch(), ty, Space.STACK), ref, size)
            self.emit(Op(Class.LDX | Mode.MEM | Size.of(size), reg, FP, self.scratch()))
        if ref.bits:
            bit, width = ref.bits
            if bit:
                self.emit(Op(OpCode.alu(AluOp.RSH), reg, 0, 0, bit))
            if width < 32:
                self.emit(Op(OpCode.alu(AluOp.AND), reg, 0, 0, (1 << width) - 1))
            elif width < 64:  # a mask this wide is no immediate: shift the rest out
                self.emit(Op(OpCode.alu(AluOp.LSH), reg, 0, 0, 64 - width))
                self.emit(Op(OpCode.alu(AluOp.RSH), reg, 0, 0, 64 - width))
        elif isinstance(result, Scalar) and result.signed and result.size < 8:
            shift = 64 - 8 * result.size
            self.emit(Op(OpCode.alu(AluOp.LSH), reg, 0, 0, shift))
            self.emit(Op(OpCode.alu(AluOp.ARSH), reg, 0, 0, shift))
        return Value(self, reg, result)

    def probe_read(self, dst: Ref, src: Ref, size: int | None = None) -> Value:
        """Copy kernel (or user) memory *src* into *dst* with bpf_probe_read_*."""
        size = src.size if size is None else size
        helper = "probe_read_user" if src.space == Space.USER else "probe_read_kernel"
        if not has_helper(helper):  # before 5.5 one helper read both
            helper = "probe_read"
        return self.call(helper, dst.addr(), size, src.addr())

    def read(self, ref: Ref, *fields: str, name: str = "a probe-read copy") -> Ref:
        """*ref* itself if the program may load it directly, else a stack copy
        made with one ``bpf_probe_read_kernel`` (read a header once, use many fields).

        With *fields*, only the bytes from the first to the last of them are
        copied (one read for a few members of a large struct like sk_buff);
        the result reads those fields and no others.  Where this kernel lays
        the fields far apart, *ref* itself comes back and each field is read
        on its own when used.
        """
        if ref.space.direct:
            return ref
        if not fields:
            copy = self.stack(ref.ty, name)
            self.probe_read(copy, ref)
            return copy
        spans = [(f.offset, f.offset + f.size) for f in (ref.ty.member(n) for n in fields)]
        lo, hi = min(s for s, _ in spans) & ~7, max(e for _, e in spans)  # keep fields aligned
        if hi - lo > 2 * sum(e - s for s, e in spans) + 64:  # mostly gap: separate reads
            return ref
        slot = self.frame.alloc(hi - lo, what=name)
        src = Ref(self, ref.base, ref.off + lo, ArrayType(u8, hi - lo), ref.space)
        self.probe_read(Ref(self, FP, slot, ArrayType(u8, hi - lo), Space.STACK), src)
        return Ref(self, FP, slot - lo, ref.ty, Space.STACK)

    def store(self, ref: Ref, value: Operandish) -> None:
        """Write *value* into *ref* (direct memory only: stack, maps, packets)."""
        if not ref.space.direct:
            raise DSLTypeError(f"cannot store into {ref.space.value} memory ({describe(ref.ty)} at offset "
                               f"{ref.off}): the program reads it with bpf_probe_read_{ref.space.value}; "
                               "stores go to the stack (b.stack), map values or ring buffer records")
        if ref.space == Space.CTX and self.prog_type not in ("xdp", "tc"):
            raise DSLTypeError(f"cannot store into the context of a {self.prog_type or 'this'} program "
                               f"({describe(ref.ty)} at offset {ref.off}): it is read-only here")
        ty = ref.ty
        if (isinstance(ty, (ArrayType, KernelType)) and not _is_scalar_kernel(ty)) or (
                isinstance(ty, type)):
            self.copy(ref, value)
            return
        target = scalar_of(ty)
        size = target.size
        if isinstance(value, int):
            wire = target.to_wire(value) if isinstance(target, Scalar) else value
            if fits_imm(wire):
                self.emit(Op(Class.ST | Mode.MEM | Size.of(size), ref.base, 0, ref.off, wire))
                return
            value = self.value(wire, target)  # already in wire order: no swap below
        v = value.rvalue() if isinstance(value, _Operators) else value
        if isinstance(v.ty, Scalar) and isinstance(target, Scalar) and v.ty.big_endian != target.big_endian and v.ty.size == target.size:
            v = self.byteswap(v)
        self.emit(Op(Class.STX | Mode.MEM | Size.of(size), ref.base, v.reg, ref.off))

    def copy(self, dst: Ref, src: Operandish) -> None:
        """Copy a struct/array/record value: probe-read for kernel memory, else loads."""
        if not isinstance(src, Ref):
            raise DSLTypeError(f"cannot store {src!r} into a {describe(dst.ty)}; "
                               "it needs memory of that type")
        size = min(dst.size, src.size)
        if not src.space.direct:
            self.probe_read(dst, src, size)
            return
        pos = 0
        for width in aligned_widths(size, src.off, dst.off):
            tmp = self.vreg("cp")
            self.emit(Op(Class.LDX | Mode.MEM | Size.of(width), tmp, src.base, src.off + pos))
            self.emit(Op(Class.STX | Mode.MEM | Size.of(width), dst.base, tmp, dst.off + pos))
            pos += width

    # -- calls ------------------------------------------------------------------------------
    def call(self, helper: str | int, *args: Operandish, returns: Scalar | PtrType = u64) -> Value:
        """Call a BPF helper by name (id from the kernel's BTF) or number.

        Memory (a char array, struct or record Ref) is passed by address; see
        the module docstring for the sizes left out after it.
        """
        hid = self._resolve_helper(helper) if isinstance(helper, str) else helper
        if any(_is_memory(a) for a in args):
            args = self._with_sizes(helper, args)
        if len(args) > 5:
            raise DSLTypeError("BPF helpers take at most 5 arguments")
        self._load_args(args)
        self.emit(Op(CALL, 0, PseudoCall.HELPER, 0, hid, nargs=len(args)))
        return self._result(returns)

    def _resolve_helper(self, name: str, *, methods: bool = False) -> int:
        """The id of helper *name*; unknown names get suggestions (Builder methods too if *methods*)."""
        try:
            return self._helper_id(name)
        except UsageError:
            pass
        short = name.removeprefix("bpf_")

        def message() -> str:
            helpers = list(helper_ids())
            own = public_methods(Builder) if methods else []
            close = close_matches(short, [*helpers, *own])
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            what = "BPF helper or Builder method" if methods else "BPF helper"
            return f"no {what} {name!r} in this kernel{hint}"

        raise UnknownName(message)

    def _with_sizes(self, helper: str | int, args: Sequence[Operandish]) -> list[Operandish]:
        """*args* with memory passed by address and the sizes left out after it
        filled in, by the helper's parameter names in the kernel's BTF."""
        try:
            params = _helper_params(self.btf, helper) if isinstance(helper, str) else None
        except BTFError:  # no kernel BTF: sizes are the caller's to give
            params = None
        if params and len(args) < len(params):
            missing, rest, out = len(params) - len(args), list(args), []
            for param in params:
                if missing and out and _is_memory(out[-1]) and _SIZE_PARAM.match(param):
                    out.append(out[-1].size)
                    missing -= 1
                elif rest:
                    out.append(rest.pop(0))
            if missing:
                raise DSLTypeError(f"bpf_{helper.removeprefix('bpf_')}({', '.join(params)}) takes "
                                   f"{len(params)} arguments, got {len(args)}")
            args = out
        return [a.addr() if _is_memory(a) else a for a in args]

    def _load_args(self, args: Sequence[Operandish]) -> None:
        values: list[Operand | int] = []
        for a in args:  # evaluate all arguments before filling r1-r5
            values.append(a if isinstance(a, int) else self.value(a).reg)
        for i, v in enumerate(values, 1):
            if isinstance(v, int) and not isinstance(v, VReg):
                self.mov_imm(i, v)
            else:
                self.mov(i, v)

    def _result(self, ty: Scalar | PtrType) -> Value:
        reg = self.vreg("ret")
        self.mov(reg, 0)
        return Value(self, reg, ty)

    def __getattr__(self, name: str) -> Callable[..., Value]:
        """``b.ktime_get_ns()``: any helper by its name."""
        if name.startswith("_"):  # no helper's name starts so; private names are never helpers
            raise AttributeError(name)
        self._resolve_helper(name, methods=True)  # an unknown name fails here, on the user's line
        return lambda *args, **kw: self.call(name, *args, **kw)

    def map_ref(self, name: str, bpf_map: object) -> Value:
        """Load the pointer to map *bpf_map* (resolved to its fd at load time)."""
        self._root.maps[name] = bpf_map
        reg = self.vreg(name)
        self.emit(Op(LD_IMM64, reg, PseudoLoad.MAP_FD, reference=name))
        return Value(self, reg, u64)

    # -- control flow -----------------------------------------------------------------------
    def branch(self, cond: Cond | _Operators, target: str, when: bool) -> None:
        """Jump to *target* if *cond* is *when*."""
        c = as_cond(cond)
        if c.kind == "not":
            self.branch(c.parts[0], target, not when)
        elif c.kind in ("and", "or"):
            first, second = c.parts
            if (c.kind == "and") != when:  # and/false or or/true: either part decides
                self.branch(first, target, when)
                self.branch(second, target, when)
            else:
                skip = self.label("sc")
                self.branch(first, skip, not when)
                self.branch(second, target, when)
                self.place(skip)
        else:
            self._compare(c, target, when)

    def _compare(self, c: Cond, target: str, when: bool) -> None:
        op, left, right, wide, _ = c.parts
        if not when:
            if op.inverse is None:  # jset: if set goto over; goto target; over:
                over = self.label("js")
                self._compare(c, over, True)
                self.emit(Op(JA, reference=target))
                self.place(over)
                return
            op = op.inverse
        if isinstance(right, int):
            if fits_imm(right):
                self.emit(Op(OpCode.jump(op, jmp32=not wide), left.reg, 0, 0, right, reference=target))
                return
            right = self.value(right)
        self.emit(Op(OpCode.jump(op, Source.X, jmp32=not wide), left.reg, right.reg, reference=target))

    @contextmanager
    def if_(self, cond: Cond | _Operators) -> Iterator[None]:
        """Emit the body only when *cond* holds; may be followed by :meth:`else_`."""
        skip, end = self.label("else"), self.label("endif")
        start = len(self.items)
        self.branch(cond, skip, False)
        body = len(self.items)
        yield
        ret = _constant_return(self.items[body:])
        if ret is not None:  # 'if cond: return k' becomes one jump to a shared 'return k'
            del self.items[start:]
            self.branch(cond, self._return_block(ret), True)
        else:
            self.emit(Op(JA, reference=end))
        self.place(skip)
        self._pending = [end]
        self.items.append(Label(end))

    @contextmanager
    def else_(self) -> Iterator[None]:
        """The other branch of the :meth:`if_` just closed."""
        if not (self.items and isinstance(self.items[-1], Label) and self._pending
                and self.items[-1].name == self._pending[0]):
            raise BuildError("else_() must directly follow a 'with b.if_(...)' block")
        end = self.items.pop().name
        self._pending = []
        body = len(self.items)
        yield
        ret = _constant_return(self.items[body:])
        skip, before = self.items[body - 1], self.items[body - 2] if body > 1 else None
        if ret is not None and isinstance(before, Op) and before.opcode in (JA, EXIT):
            # 'else: return k' with nothing falling into it: jumps go to a shared 'return k'
            target = self._return_block(ret)
            del self.items[body - 1:]
            for item in self.items:
                if isinstance(item, Op) and item.reference == skip.name:
                    item.reference = target
        self.place(end)

    def _return_block(self, mov: Op) -> str:
        """The label of the shared block that returns what *mov* puts in r0."""
        key = (mov.opcode, mov.imm)
        if key not in self._returns:
            self._returns[key] = (self.label("ret"), mov)
        return self._returns[key][0]

    def _with_returns(self) -> list[Item]:
        """The function's items followed by its shared return blocks."""
        items = list(self.items)
        for label, mov in self._returns.values():
            items += [Label(label), mov, Op(EXIT, source=mov.source)]
        return items

    def return_(self, value: Operandish = 0) -> None:
        """Return *value* from this function (the program's verdict in main)."""
        if isinstance(value, int):
            self.mov_imm(0, value)
        else:
            self.mov(0, self.value(value).reg)
        self.emit(Op(EXIT))

    def range(self, stop: int | _Operators, start: int = 0, step: int = 1) -> Iterator[Value]:
        """``for i in b.range(n):`` a bounded loop (kernel 5.3+); the body is emitted once."""
        head, cont, end = self.label("loop"), self.label("next"), self.label("done")
        i = self.vreg("i")
        self.mov_imm(i, start)
        self.place(head)
        counter = Value(self, i, u64)
        self.branch(counter < stop if step > 0 else counter > stop, end, False)
        self._loops.append(_Loop(head, cont, end))
        try:
            yield counter
        finally:
            self._loops.pop()
        self.place(cont)
        self.emit(Op(OpCode.alu(AluOp.ADD), i, 0, 0, step))
        self.emit(Op(JA, reference=head))
        self.place(end)

    def break_(self) -> None:
        self.emit(Op(JA, reference=self._innermost().end))

    def continue_(self) -> None:
        self.emit(Op(JA, reference=self._innermost().cont))

    def _innermost(self) -> _Loop:
        if not self._loops:
            raise BuildError("break_()/continue_() outside b.range()")
        return self._loops[-1]

    # -- functions --------------------------------------------------------------------------
    def function(self, body: Callable[..., object], nargs: int | None = None) -> Callable[..., Value]:
        """Make *body(b, *args)* a bpf-to-bpf function; calling the result emits a call."""
        count = nargs if nargs is not None else len(inspect.signature(body).parameters) - 1

        def call(*args: Operandish) -> Value:
            if len(args) != count:
                raise DSLTypeError(f"{body.__name__}() takes {count} arguments, got {len(args)}")
            name = self._define(body, [u64] * count)
            self._load_args(args)
            self.emit(Op(CALL, 0, PseudoCall.CALL, 0, -1, reference=name, nargs=count))
            return self._result(u64)

        return call

    def _define(self, body: Callable[..., object], params: Sequence[Scalar | PtrType]) -> str:
        """Build *body* as a function taking *params* in r1.. (once); returns its label.

        A function that ends without ``return_()`` returns 0.
        """
        name, root = body.__name__, self._root
        if name not in root.functions:
            sub = Builder(self.prog_type, parent=self, btf=self._btf, helper_ids=self._helper_id)
            root.functions[name] = (sub, body)
            values = []
            for k, ty in enumerate(params):
                reg = sub.vreg(f"arg{k}")
                sub.mov(reg, k + 1)
                values.append(Value(sub, reg, ty))
            body(sub, *values)
            sub.return_(0)
        return name

    def loop(self, count: Operandish, body: Callable[..., object], ctx: Ref | None = None) -> Value:
        """``bpf_loop`` (5.17+): call *body(b, i, ctx)* for i in 0..count-1, up to 2**23 times.

        The body is a separate function: it sees only *ctx*, a pointer to the
        caller's stack memory given here, and returns 0 to go on or 1 to stop.
        Returns the number of iterations run.
        """
        ctx_ty = PtrType(ctx.ty, Space.STACK) if ctx is not None else u64
        name = self._define(body, [u32, ctx_ty])
        callback = self.vreg("callback")
        self.emit(Op(LD_IMM64, callback, PseudoLoad.FUNC, reference=name))
        return self.call("loop", count, Value(self, callback, u64), ctx.addr() if ctx is not None else 0, 0)

    # -- output --------------------------------------------------------------------------------
    def finish(self) -> list[Instruction]:
        """Allocate registers in every function and lay them out: main first."""
        insns = allocate(self._with_returns(), self.frame, self.vreg)
        for name, (sub, _) in self.functions.items():
            body = allocate(sub._with_returns(), sub.frame, sub.vreg)
            insns.append(replace(body[0], symbol=name))
            insns.extend(body[1:])
        return insns

    def assemble(self, maps: dict[str, object] | None = None) -> list[Instruction]:
        """:meth:`finish`, then resolve labels and map fds."""
        return assemble(self.finish(), maps=maps or {}, long_jumps=True)


def _constant_return(body: list[Item]) -> Op | None:
    """The ``r0 = k`` of a block that is exactly ``r0 = k; exit``."""
    if len(body) != 2 or not all(isinstance(item, Op) for item in body):
        return None
    mov, exit_ = body
    movs = (OpCode.alu(AluOp.MOV), OpCode.alu(AluOp.MOV, alu32=True), LD_IMM64)
    is_mov_imm = mov.opcode in movs and mov.src == 0
    return mov if is_mov_imm and mov.dst == 0 and exit_.opcode == EXIT else None


def _is_memory(arg: object) -> bool:
    """A Ref a helper takes by address: an array, struct or record (not a scalar field)."""
    if not isinstance(arg, Ref):
        return False
    ty = arg.ty
    if isinstance(ty, KernelType):
        return ty.is_composite or ty.is_array
    return isinstance(ty, (ArrayType, type))


def _helper_params(btf: BTF, helper: str) -> list[str] | None:
    """Parameter names of helper *helper* from its ``bpf_<name>`` function in *btf*, if it has one."""
    name = f"bpf_{helper.removeprefix('bpf_')}"
    ids = btf.ids(name, [Kind.FUNC])
    if not ids:
        return None
    return [a.name for a in signature(btf, ids[0]).args if not a.name.startswith("__ur_")]


def _is_scalar_kernel(ty) -> bool:
    return isinstance(ty, KernelType) and not (ty.is_composite or ty.is_array)


def _unit_size(ref: Ref) -> int:
    bit, width = ref.bits
    for size in (1, 2, 4, 8):
        if bit + width <= 8 * size:
            return size
    return 8


def _alu32(ty: Scalar | PtrType) -> bool:
    """Unsigned values of up to 32 bits compute in the 32-bit ALU (which zero-extends)."""
    return isinstance(ty, Scalar) and ty.size <= 4 and not ty.signed


def _promote(ty: Scalar, rhs: Operandish) -> Scalar:
    """The result type of a binary operation (C's usual conversions, roughly).

    Signed operations are 64-bit, so their result is ``s64``: a narrower
    signed type would claim a range the register does not keep.
    """
    other = rhs.vtype if isinstance(rhs, _Operators) else None
    if isinstance(other, PtrType):
        return u64
    sizes = [ty.size] + ([other.size] if isinstance(other, Scalar) else [])
    signed = ty.signed or (isinstance(other, Scalar) and other.signed)
    size = 8 if signed else max(4, *sizes)
    if ty.big_endian:
        raise DSLTypeError("arithmetic on a big-endian value: convert it with .to_host() first")
    return Scalar(size, signed)


__all__ = ["BuildError", "Builder", "Cond", "Ref", "Value"]
