"""eDSL values: registers, memory references and conditions with Python operators.

* :class:`Value` is a result in a (virtual) register: a scalar or a pointer.
* :class:`Ref` is typed memory: a struct field, a stack slot, a record field.
  Reading it emits a load (directly, or through ``bpf_probe_read_kernel`` for
  kernel memory); ``.field`` and ``[i]`` walk into it without loading.
* :class:`Cond` is a comparison, consumed by ``b.if_()``; ``&``, ``|`` and
  ``~`` combine conditions with short-circuit jumps, as do :func:`any_of`
  and :func:`all_of`.  ``x.in_(1, 6, 17)`` is a membership test (one load,
  one jump per value); a char array compares with a string
  (``dev.name == "eth0"``) in word-sized loads.

Arithmetic follows the operand types: unsigned values up to 32 bits use the
32-bit ALU (as clang does with alu32), others the 64-bit one; signed values
use signed division, shifts and comparisons.  Python ints are folded into
immediates; comparing a big-endian field with a Python int swaps the int at
build time, so ``tcp.dest == 80`` costs nothing extra.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Iterator, Union

from ..isa import AluOp, JumpOp, OpCode, Source
from .errors import DSLTypeError, UnknownName, public_methods, unknown_attribute
from .ir import MOV64_X, Op, Operand
from .types import (
    ArrayType,
    KernelType,
    PtrType,
    Scalar,
    Space,
    u64,
)

if TYPE_CHECKING:  # pragma: no cover
    from .builder import Builder

Operandish = Union["Value", "Ref", int]

_SIGNED_CMP = {JumpOp.JGT: JumpOp.JSGT, JumpOp.JGE: JumpOp.JSGE,
               JumpOp.JLT: JumpOp.JSLT, JumpOp.JLE: JumpOp.JSLE}
_SWAPPED = {JumpOp.JGT: JumpOp.JLT, JumpOp.JGE: JumpOp.JLE, JumpOp.JLT: JumpOp.JGT,
            JumpOp.JLE: JumpOp.JGE, JumpOp.JEQ: JumpOp.JEQ, JumpOp.JNE: JumpOp.JNE,
            JumpOp.JSET: JumpOp.JSET}
_FITS_IMM = range(-(1 << 31), 1 << 31)


class _Operators:
    """Arithmetic and comparisons, shared by values and references."""

    __slots__ = ()

    b: Builder

    def rvalue(self) -> Value:
        raise NotImplementedError

    @property
    def vtype(self) -> Scalar | PtrType:
        """The type of the value, without emitting a load."""
        raise NotImplementedError

    def __bool__(self) -> bool:
        raise DSLTypeError("an eDSL value has no truth value at build time: "
                           "use 'with b.if_(value):' instead of 'if value:'")

    def _reflected(self, op: AluOp, o: int) -> Value:
        """``o op self`` for a Python int *o*, which takes this value's type."""
        v = self.rvalue()
        return self.b.binop(op, self.b.value(o, v.ty), v)

    # arithmetic
    def __add__(self, o): return self.b.binop(AluOp.ADD, self, o)
    def __radd__(self, o): return self.b.binop(AluOp.ADD, self, o)
    def __sub__(self, o): return self.b.binop(AluOp.SUB, self, o)
    def __rsub__(self, o): return self._reflected(AluOp.SUB, o)
    def __mul__(self, o): return self.b.binop(AluOp.MUL, self, o)
    def __rmul__(self, o): return self.b.binop(AluOp.MUL, self, o)
    def __floordiv__(self, o): return self.b.binop(AluOp.DIV, self, o)
    def __mod__(self, o): return self.b.binop(AluOp.MOD, self, o)
    def __rfloordiv__(self, o): return self._reflected(AluOp.DIV, o)
    def __rmod__(self, o): return self._reflected(AluOp.MOD, o)
    def __and__(self, o): return self.b.binop(AluOp.AND, self, o)
    def __rand__(self, o): return self.b.binop(AluOp.AND, self, o)
    def __or__(self, o): return self.b.binop(AluOp.OR, self, o)
    def __ror__(self, o): return self.b.binop(AluOp.OR, self, o)
    def __xor__(self, o): return self.b.binop(AluOp.XOR, self, o)
    def __rxor__(self, o): return self.b.binop(AluOp.XOR, self, o)
    def __lshift__(self, o): return self.b.binop(AluOp.LSH, self, o)
    def __rshift__(self, o): return self.b.binop(AluOp.RSH, self, o)
    def __rlshift__(self, o): return self._reflected(AluOp.LSH, o)
    def __rrshift__(self, o): return self._reflected(AluOp.RSH, o)
    def __neg__(self): return self.b.unop_neg(self)
    def __invert__(self): return self.b.binop(AluOp.XOR, self, -1)

    # comparisons
    def __eq__(self, o):  # type: ignore[override]
        return _string_equal(self, o) if isinstance(o, (str, bytes)) else Cond.compare(JumpOp.JEQ, self, o)

    def __ne__(self, o):  # type: ignore[override]
        return ~_string_equal(self, o) if isinstance(o, (str, bytes)) else Cond.compare(JumpOp.JNE, self, o)

    def __gt__(self, o): return Cond.compare(JumpOp.JGT, self, o)
    def __ge__(self, o): return Cond.compare(JumpOp.JGE, self, o)
    def __lt__(self, o): return Cond.compare(JumpOp.JLT, self, o)
    def __le__(self, o): return Cond.compare(JumpOp.JLE, self, o)

    __hash__ = None  # type: ignore[assignment]

    def test(self, mask: int) -> Cond:
        """``value & mask != 0`` as one jump (JSET)."""
        return Cond.compare(JumpOp.JSET, self, mask)

    def in_(self, *values: Operandish | str | bytes) -> Cond:
        """True when this value equals one of *values*: ``proto.in_(6, 17)``.

        The value is loaded once; each candidate costs one jump (a string
        candidate, for a char array, a few word compares).
        """
        if not values:
            raise DSLTypeError("in_() needs at least one value to compare with")
        if isinstance(self, Ref) and any(isinstance(k, (str, bytes)) for k in values):
            subject: _Operators = self.b.read(self, name="a string compared")
        else:
            subject = self.rvalue()
        return any_of(*(subject == k for k in values))


class Value(_Operators):
    """A scalar or pointer held in a register."""

    __slots__ = ("b", "reg", "ty")

    def __init__(self, b: Builder, reg: Operand, ty: Scalar | PtrType) -> None:
        self.b, self.reg, self.ty = b, reg, ty

    def rvalue(self) -> Value:
        return self

    @property
    def vtype(self) -> Scalar | PtrType:
        return self.ty

    def __repr__(self) -> str:
        return f"<Value {self.reg!r}: {self.ty!r}>"

    # pointers
    def _ptr(self) -> PtrType:
        if not isinstance(self.ty, PtrType):
            raise DSLTypeError(f"a {describe(self.ty)} is not a pointer; .cast() it to a type first")
        return self.ty

    def deref(self) -> Ref:
        """The memory this pointer points to."""
        ptr = self._ptr()
        if ptr.nullable:
            raise _null_error(ptr)
        if ptr.target is None:
            raise DSLTypeError("a void pointer: .cast() it to a type first")
        return Ref(self.b, self.reg, 0, ptr.target, ptr.space)

    def __getattr__(self, name: str) -> Ref:
        """``ptr.field``: a field of what this pointer points to."""
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        ptr = self.ty
        if not isinstance(ptr, PtrType) or not _has_fields(ptr.target):
            void = isinstance(ptr, PtrType) and (ptr.target is None or getattr(ptr.target, "type_id", None) == 0)
            note = "a void pointer has no fields: .cast() it to a type first" if void else ""
            raise unknown_attribute(f"a {describe(ptr)} value", name, list,
                                    lambda: public_methods(type(self)), note=note)
        field = _member(Ref(self.b, self.reg, 0, ptr.target, ptr.space), name, type(self))
        if ptr.nullable:  # a real field: the pointer must be tested first
            raise _null_error(ptr)
        return field

    def __setattr__(self, name: str, value: object) -> None:
        if name in Value.__slots__:
            object.__setattr__(self, name, value)
        else:  # ptr.field = x stores through the pointer
            self.__getattr__(name).store(value)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Ref:
        ptr = self._ptr()
        return Ref(self.b, self.reg, 0, ptr.target, ptr.space)[index]

    def cast(self, ty: str | KernelType | Scalar | ArrayType | type, space: Space | None = None) -> Value:
        """This value as a pointer to *ty* (``"struct iphdr"``), or as another scalar
        (converted as C converts: truncated, then zero- or sign-extended)."""
        target = self.b.resolve_type(ty)
        if isinstance(target, Scalar) and not isinstance(self.ty, PtrType):
            return _convert(self, target)
        old = self.ty.space if isinstance(self.ty, PtrType) else Space.KERNEL
        nullable = self.ty.nullable if isinstance(self.ty, PtrType) else False
        return Value(self.b, self.reg, PtrType(target, space or old, nullable))

    def at(self, offset: Operandish) -> Value:
        """Pointer arithmetic in bytes; the result points to nothing typed (cast it)."""
        ptr = self._ptr()
        moved = self.b.binop(AluOp.ADD, Value(self.b, self.reg, u64), offset)
        return Value(self.b, moved.reg, PtrType(None, ptr.space, ptr.nullable))

    def to_host(self) -> Value:
        """A big-endian value converted to host order."""
        return self.b.byteswap(self)

    def non_null(self) -> Value:
        """The same pointer, known non-NULL (use inside ``b.if_(ptr)``)."""
        ptr = self._ptr()
        return Value(self.b, self.reg, PtrType(ptr.target, ptr.space, False))


class Var(Value):
    """A value that can be reassigned on some paths: ``v.set(x)`` (see ``Builder.var``).

    Rebinding a Python name inside ``with b.if_():`` only renames a value on
    that path; a Var is one register every path writes.
    """

    __slots__ = ()

    def set(self, x: Operandish) -> None:
        if isinstance(x, int):
            self.b.mov_imm(self.reg, x)
        else:
            self.b.mov(self.reg, x.rvalue().reg)


class Ref(_Operators):
    """Typed memory at ``base + off`` in a space; loads happen on use."""

    __slots__ = ("b", "base", "bits", "off", "space", "ty")

    def __init__(self, b: Builder, base: Operand, off: int, ty, space: Space,
                 bits: tuple[int, int] | None = None) -> None:
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "off", off)
        object.__setattr__(self, "ty", ty)
        object.__setattr__(self, "space", space)
        object.__setattr__(self, "bits", bits)  # (bit offset in the loaded unit, width)

    def __repr__(self) -> str:
        return f"<Ref {self.ty!r} at {self.base!r}{self.off:+d} ({self.space.value})>"

    @property
    def size(self) -> int:
        return self.ty.size

    def rvalue(self) -> Value:
        return self.b.load(self)

    @property
    def vtype(self) -> Scalar | PtrType:
        return self.b.load_type(self)

    def addr(self) -> Value:
        """A pointer to this memory."""
        reg = self.b.vreg("addr")
        self.b.emit(Op(MOV64_X, reg, self.base))
        if self.off:
            self.b.emit(Op(OpCode.alu(AluOp.ADD), reg, 0, 0, self.off))
        return Value(self.b, reg, PtrType(self.ty, self.space))

    def field(self, name: str) -> Ref:
        """Member *name* of this struct or record (through a pointer field, loaded first)."""
        if isinstance(self.ty, KernelType) and self.ty.is_pointer:
            return self.rvalue().__getattr__(name)
        return _member(self, name, type(self))

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self.field(name)

    def __setattr__(self, name: str, value: Operandish) -> None:
        self.field(name).store(value)

    def __getitem__(self, index: int) -> Ref:
        ty = self.ty
        if isinstance(ty, KernelType) and ty.is_pointer:
            return self.rvalue()[index]
        if isinstance(ty, KernelType) and ty.is_array:
            elem = ty.element()
        elif isinstance(ty, ArrayType):
            elem = ty.elem
        else:
            elem = ty
        if not isinstance(index, int):
            raise DSLTypeError("eDSL indexes are Python ints (use .at() for computed offsets)")
        return Ref(self.b, self.base, self.off + index * elem.size, elem, self.space)

    def __setitem__(self, index: int, value: Operandish) -> None:
        self[index].store(value)

    def store(self, value: Operandish) -> None:
        self.b.store(self, value)

    # Value methods, on the loaded value
    def to_host(self) -> Value:
        return self.rvalue().to_host()

    def cast(self, ty, space: Space | None = None) -> Value:
        return self.rvalue().cast(ty, space)

    def at(self, offset: Operandish) -> Value:
        return self.rvalue().at(offset)

    def deref(self) -> Ref:
        return self.rvalue().deref()

    def view(self, ty, offset: int = 0) -> Ref:
        """The same memory seen as another type (e.g. an IPv4 address in a u8[16])."""
        return Ref(self.b, self.base, self.off + offset, self.b.resolve_type(ty), self.space)


class Cond:
    """A branch condition: a comparison, or a combination of them."""

    def __init__(self, kind: str, *parts) -> None:
        self.kind, self.parts = kind, parts

    @classmethod
    def compare(cls, op: JumpOp, lhs: _Operators, rhs: Operandish) -> Cond:
        b = lhs.b
        left = lhs.rvalue()
        ty = left.ty
        if isinstance(rhs, int):
            if isinstance(ty, Scalar):
                rhs = ty.to_wire(rhs)
        else:
            right = rhs.rvalue()
            if isinstance(ty, Scalar) and isinstance(right.ty, Scalar) and ty.big_endian != right.ty.big_endian:
                raise DSLTypeError("comparing a big-endian value with a host-order one: "
                                   "convert with .to_host()")
            rhs = right
        # both operands decide, as in arithmetic: signed if either is, 32-bit only if both fit
        types = [ty] + ([rhs.ty] if isinstance(rhs, Value) else [])
        signed = all(isinstance(t, Scalar) for t in types) and any(t.signed for t in types)
        if signed and op in _SIGNED_CMP:
            op = _SIGNED_CMP[op]
        wide = signed or any(not isinstance(t, Scalar) or t.size > 4 for t in types)
        return cls("cmp", op, left, rhs, wide, b)

    def __and__(self, other: Cond) -> Cond:
        return Cond("and", self, _cond(other))

    def __or__(self, other: Cond) -> Cond:
        return Cond("or", self, _cond(other))

    def __invert__(self) -> Cond:
        return Cond("not", self)

    def __bool__(self) -> bool:
        raise DSLTypeError("a condition has no truth value at build time: use 'with b.if_(cond):' "
                           "and combine conditions with & | ~ (not 'and'/'or'/'not')")


def _cond(c: Cond | _Operators) -> Cond:
    if isinstance(c, Cond):
        return c
    if not isinstance(c, _Operators):
        raise DSLTypeError(f"{c!r} is not a condition or an eDSL value")
    return Cond.compare(JumpOp.JNE, c, 0)


def as_cond(c: Cond | _Operators) -> Cond:
    return _cond(c)


def any_of(*conds: Cond | _Operators) -> Cond:
    """True when one of *conds* is: one jump each, the first that holds decides
    (operands are loaded when each condition is made, before the jumps)."""
    return _combine("or", conds)


def all_of(*conds: Cond | _Operators) -> Cond:
    """True when all of *conds* are: one jump each, the first false one decides."""
    return _combine("and", conds)


def _combine(kind: str, conds: tuple) -> Cond:
    if not conds:
        raise DSLTypeError(f"{'any_of' if kind == 'or' else 'all_of'}() needs at least one condition")
    result = _cond(conds[0])
    for c in conds[1:]:
        result = Cond(kind, result, _cond(c))
    return result


def _string_equal(x: _Operators, text: str | bytes) -> Cond:
    """``char[N] == "eth0"``: the bytes of *text* and its terminating NUL (if it
    is shorter than the array), compared a word at a time."""
    count = _byte_array_length(x.ty) if isinstance(x, Ref) else None
    if count is None:
        raise DSLTypeError("only a char array compares with a string, not a "
                           f"{describe(x.ty if isinstance(x, Ref) else x.vtype)}")
    data = text.encode() if isinstance(text, str) else bytes(text)
    if len(data) > count:
        raise DSLTypeError(f"{text!r} has {len(data)} bytes: it never equals a {describe(x.ty)}")
    if len(data) < count:
        data += b"\0"
    mem = x.b.read(x, name="a string compared")
    parts, pos = [], 0
    for width in aligned_widths(len(data), mem.off):
        word = int.from_bytes(data[pos:pos + width], sys.byteorder)
        if width == 4 and word >= 1 << 31:  # a 32-bit jump compares the low 32 bits
            word -= 1 << 32
        loaded = Ref(mem.b, mem.base, mem.off + pos, Scalar(width), mem.space).rvalue()
        parts.append(Cond("cmp", JumpOp.JEQ, loaded, word, width == 8, mem.b))
        pos += width
    return all_of(*parts)


def aligned_widths(size: int, *offsets: int) -> Iterator[int]:
    """Access widths covering *size* bytes from each of *offsets*, each access aligned in all of
    them (the verifier refuses misaligned stack, map and context accesses): widest first."""
    pos = 0
    while pos < size:
        width = next(w for w in (8, 4, 2, 1)
                     if size - pos >= w and all((off + pos) % w == 0 for off in offsets))
        yield width
        pos += width


def _byte_array_length(ty) -> int | None:
    """The length of a char/u8 array type, else None."""
    if isinstance(ty, ArrayType):
        return ty.count if ty.elem.size == 1 else None
    if isinstance(ty, KernelType) and ty.is_array:
        elem = ty.element()
        return ty.size if not (elem.is_composite or elem.is_array) and elem.size == 1 else None
    return None


def describe(ty) -> str:
    """A type as messages name it: ``struct iphdr``, ``record Drop``, ``u32``, ``void``."""
    if ty is None:
        return "void"
    if isinstance(ty, type):
        return f"record {ty.__name__}"
    return repr(ty)


def _has_fields(ty) -> bool:
    return (isinstance(ty, KernelType) and ty.is_composite) or isinstance(ty, type)


def _member(ref: Ref, name: str, owner: type) -> Ref:
    """The Ref of field *name* of *ref*; an unknown name is an error that says
    whether it looks like a field or like a method of *owner* (Ref or Value)."""
    ty = ref.ty
    methods = lambda: public_methods(owner)  # noqa: E731
    if isinstance(ty, KernelType) and ty.is_composite:
        try:
            f = ty.member(name)
        except UnknownName:
            if not name.isidentifier():
                raise
            raise unknown_attribute(describe(ty), name, ty.field_names, methods) from None
        member = KernelType(ty.btf, f.type_id)
        bits = (f.bit_offset - 8 * f.offset, f.bit_size) if f.bit_size else None
        return Ref(ref.b, ref.base, ref.off + f.offset, member, ref.space, bits)
    if isinstance(ty, type):  # a Record
        for fname, offset, fty in ty.FIELDS:
            if fname == name:
                return Ref(ref.b, ref.base, ref.off + offset, fty, ref.space)
        raise unknown_attribute(describe(ty), name, lambda: [f[0] for f in ty.FIELDS], methods)
    raise unknown_attribute(describe(ty), name, list, methods)


def _null_error(ptr: PtrType) -> DSLTypeError:
    return DSLTypeError(f"this pointer may be NULL ({describe(ptr)}): test it first, "
                        "'with b.if_(ptr != 0):', and use ptr.non_null() inside")


def _convert(v: Value, ty: Scalar) -> Value:
    """*v* as scalar *ty*; the register keeps holding the value zero- or sign-extended."""
    src = v.ty
    same_order = not (src.big_endian or ty.big_endian)
    widening = src.size < ty.size and (ty.signed or not src.signed)
    if ty.size == 8 or not same_order or widening or (src.size, src.signed) == (ty.size, ty.signed):
        return Value(v.b, v.reg, ty)
    b, reg = v.b, v.b.vreg("cast")
    if ty.signed:
        shift = 64 - 8 * ty.size
        b.emit(Op(MOV64_X, reg, v.reg))
        b.emit(Op(OpCode.alu(AluOp.LSH), reg, 0, 0, shift))
        b.emit(Op(OpCode.alu(AluOp.ARSH), reg, 0, 0, shift))
    elif ty.size == 4:
        b.emit(Op(OpCode.alu(AluOp.MOV, Source.X, alu32=True), reg, v.reg))  # w = w zero-extends
    else:
        b.emit(Op(MOV64_X, reg, v.reg))
        b.emit(Op(OpCode.alu(AluOp.AND), reg, 0, 0, (1 << 8 * ty.size) - 1))
    return Value(b, reg, ty)


def fits_imm(value: int) -> bool:
    """Whether *value* fits a 32-bit signed immediate.  ``int()`` first: ``range`` tests an
    int subclass (an IntEnum such as ``socket.AF_UNIX``) by iterating, 2**32 steps."""
    return int(value) in _FITS_IMM


def scalar_of(ty) -> Scalar:
    if isinstance(ty, Scalar):
        return ty
    if isinstance(ty, KernelType):
        return ty.scalar()
    if isinstance(ty, PtrType):
        return u64
    raise DSLTypeError(f"{describe(ty)} is not a scalar")


__all__ = ["Cond", "Ref", "Value", "Var", "aligned_widths", "all_of", "any_of", "as_cond", "describe", "fits_imm",
           "scalar_of"]
