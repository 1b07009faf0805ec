"""Program contexts: what ``ctx`` is in each kind of program.

* tracepoint: the event's fields by name, laid out by the kernel's BTF
  (``struct trace_event_raw_<event>``) or, without it, by the tracefs
  ``format`` file; ``ctx.skbaddr`` is a kernel pointer, ``ctx.reason`` an int.
* raw_tracepoint / tp_btf: ``ctx.arg(i)``, typed by the tracepoint's BTF
  prototype (``btf_trace_<event>``); tp_btf pointers allow direct loads.
* fentry/fexit: arguments by index or by name, typed by the function's BTF.
* kprobe/kretprobe: arguments through ``struct pt_regs`` of this machine's
  architecture (``ctx.arg(i)``, ``ctx.ret``), typed by BTF when it knows the
  function.
* xdp / tc: ``ctx.packet()`` gives a :class:`Packet`: ``with pkt.header(ty) as h:``
  generates the bounds check the verifier wants, and ``h`` reads the packet
  directly.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Iterator

from ..btf import Kind, StructLayout, read_format
from ..btf.fields import member_names
from ..btf.funcs import signature
from ..errors import BPFError
from ..isa import AluOp, OpCode, Source
from ..kernel import TRACEFS_MOUNTS
from .errors import DSLError, DSLTypeError, UnknownName, did_you_mean, public_methods, unknown_attribute
from .ir import Op, VReg
from .types import KernelType, PtrType, Scalar, Space, u32, u64
from .values import Operandish, Ref, Value

#: argument registers in struct pt_regs, per architecture (kprobes)
PT_REGS_ARGS = {
    "x86_64": ("di", "si", "dx", "cx", "r8", "r9"),
    "aarch64": tuple(f"regs[{i}]" for i in range(8)),
    "riscv64": ("a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"),
    "s390x": tuple(f"gprs[{i}]" for i in range(2, 7)),
    "ppc64le": tuple(f"gpr[{i}]" for i in range(3, 11)),
}
#: the link register that holds the return address at entry (x86_64 keeps it on the stack)
PT_REGS_LINK = {"aarch64": "regs[30]", "riscv64": "ra", "s390x": "gprs[14]", "ppc64le": "link"}
PT_REGS_RET = {"x86_64": "ax", "aarch64": "regs[0]", "riscv64": "a0", "s390x": "gprs[2]",
               "ppc64le": "gpr[3]"}


class ContextError(DSLError):
    """A context this kernel or architecture cannot give (unknown names are :class:`UnknownName`)."""


def entry(b) -> VReg:
    """The context pointer, saved from r1 at the start of the program."""
    reg = b.vreg("ctx")
    b.mov(reg, 1)
    return reg


class Context:
    """Base: the context register and a way to name its fields."""

    def __init__(self, b, reg: VReg) -> None:
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "reg", reg)

    @property
    def value(self) -> Value:
        """The context pointer itself (for helpers that take ctx)."""
        return Value(self.b, self.reg, PtrType(None, Space.CTX))

    def rvalue(self) -> Value:
        return self.value

    def __setattr__(self, name: str, value: Operandish) -> None:
        """``ctx.field = x`` stores into the context (xdp and tc only; others say why not)."""
        target = getattr(self, name)
        if not isinstance(target, Ref):
            raise DSLTypeError(f"ctx.{name} is a value the program was given, not memory: "
                               "it cannot be assigned")
        target.store(value)


class TracepointContext(Context):
    """Fields of a tracepoint event (``ctx.skbaddr``, ``ctx.reason``).

    ``common_pid`` and the other ``common_*`` fields of the format file are
    there with BTF layouts too (as ``ent.pid``...), so one program reads both.
    """

    def __init__(self, b, reg: VReg, category: str, event: str) -> None:
        super().__init__(b, reg)
        layout, source = _tracepoint_layout(b, category, event)
        object.__setattr__(self, "layout", layout)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "event", f"{category}:{event}")
        object.__setattr__(self, "_names", None)

    def _top_names(self) -> dict[str, str]:
        """Each top-level name, including ``common_*``, mapped to its path in the layout."""
        if self._names is None:
            layout = self.layout
            if isinstance(layout, StructLayout):
                names = {n: n for n in member_names(layout.btf, layout.type_id)}
                if "ent" in names:
                    ent = layout.btf.complete(layout.field("ent").type_id)
                    names.update({f"common_{n}": f"ent.{n}" for n in member_names(layout.btf, ent)})
            else:
                names = {f.path: f.path for f in layout.fields()}
            object.__setattr__(self, "_names", names)
        return self._names

    def fields(self) -> list[str]:
        """The event's own fields: no ``common_*`` header fields, no internal ones (``ent``, ``__data``)."""
        return [n for n in self._top_names() if not _internal_field(n) and not n.startswith("common_")]

    def has_field(self, name: str) -> bool:
        """Whether the event has field *name* (a name or a path such as ``ent.pid``); cheap when not."""
        names = self._top_names()
        head = re.split(r"\.|->|\[", name, maxsplit=1)[0]
        if head not in names:
            return False
        return head == name or self.layout.has_field(names[head] + name[len(head):])

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        names = self._top_names()
        if name not in names:
            raise unknown_attribute(
                f"tracepoint {self.event} ({self.source})", name, self.fields,
                lambda: public_methods(type(self)),
                also=lambda: [n for n in names if n.startswith("common_")])
        f = self.layout.field(names[name])
        if f.type_id is not None:
            ty = KernelType(self.b.btf, f.type_id)
        elif "*" in f.type_name:
            return Ref(self.b, self.reg, f.offset, PtrType(None, Space.KERNEL), Space.CTX)
        else:
            ty = Scalar(f.size, f.signed, name=f.type_name)
        return Ref(self.b, self.reg, f.offset, ty, Space.CTX)


def _internal_field(name: str) -> bool:
    """``ent`` (the common header as one struct) and ``__data`` (the dynamic area) of a BTF layout."""
    return name == "ent" or name.startswith("__")


def _tracepoint_layout(b, category: str, event: str):
    """The event's layout: kernel BTF when it has the struct, else the tracefs format.

    Events of a class (netif_receive_skb is a net_dev_template) have no
    struct of their own name: the format file describes them.
    """
    events = _events_dir()
    if events and not os.path.isdir(os.path.join(events, category, event)):
        raise ContextError(lambda: f"no tracepoint {category}:{event} in {events}"
                                   f"{did_you_mean(f'{category}:{event}', _event_names(events, category))}")
    if b.btf.ids(f"trace_event_raw_{event}", [Kind.STRUCT]):  # no "did you mean" search
        return b.btf.trace_event(event), f"BTF struct trace_event_raw_{event}"
    try:
        fmt = read_format(category, event)
    except BPFError as err:
        raise ContextError(str(err)) from None
    return fmt, fmt.source


def _events_dir() -> str | None:
    """tracefs's ``events`` directory, if tracefs is mounted."""
    for root in TRACEFS_MOUNTS:
        events = os.path.join(root, "events")
        if os.path.isdir(events):
            return events
    return None


def _event_names(events: str, category: str) -> list[str]:
    """``category:event`` of the tracepoints of *category*, or of all if there is no such category."""
    if os.path.isdir(os.path.join(events, category)):
        categories = [category]
    else:
        categories = [c for c in os.listdir(events) if os.path.isdir(os.path.join(events, c))]
    return [f"{c}:{e}" for c in categories for e in os.listdir(os.path.join(events, c))
            if os.path.isdir(os.path.join(events, c, e))]


class _NamedArgs(Context):
    """Arguments by name (``ctx.skb``) as well as by index (``ctx.arg(0)``)."""

    names: list[str]

    def arg(self, index: int) -> Value:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Value:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name not in self.names:
            raise unknown_attribute(f"the context of this {self.b.prog_type} program", name,
                                    lambda: self.names, lambda: public_methods(type(self)),
                                    field_word="argument")
        return self.arg(self.names.index(name))


class ArgsContext(_NamedArgs):
    """``u64 args[]`` of raw_tracepoint, tp_btf, fentry and fexit programs."""

    def __init__(self, b, reg: VReg, arg_types: list[KernelType | None], names: list[str],
                 space: Space) -> None:
        super().__init__(b, reg)
        object.__setattr__(self, "arg_types", arg_types)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "space", space)

    def arg(self, index: int) -> Value:
        """Argument *index*: a typed pointer or an integer."""
        ref = Ref(self.b, self.reg, 8 * index, u64, Space.CTX)
        v = self.b.load(ref)
        ty = self.arg_types[index] if index < len(self.arg_types) else None
        if ty is None:
            return v
        if ty.is_pointer:
            return Value(self.b, v.reg, PtrType(ty.pointee(), self.space))
        return Value(self.b, v.reg, ty.scalar())  # the kernel widened it to u64



def tracepoint_args(b, event: str) -> tuple[list[KernelType | None], list[str]]:
    """Argument types of tracepoint *event* from its ``btf_trace_<event>`` prototype;
    their names from the ``__bpf_trace_<event>`` function where BTF has it (else arg0...)."""
    btf = b.btf
    ids = btf.ids(f"btf_trace_{event}", [Kind.TYPEDEF])  # a miss is no error here: no suggestions
    if not ids:
        return [], []
    proto = btf.type(btf.resolve(btf.type(btf.resolve(ids[0])).type_id))
    params = list(getattr(proto, "params", ()))[1:]  # the first is the tracepoint's data
    names = [p.name or f"arg{i}" for i, p in enumerate(params)]
    func = btf.ids(f"__bpf_trace_{event}", [Kind.FUNC])
    if func:
        named = [a.name for a in signature(btf, func[0]).args][1:]
        if len(named) == len(params) and all(named):
            names = named
    return [KernelType(btf, p.type_id) for p in params], names


def function_args(b, function: str) -> tuple[list[KernelType | None], list[str]]:
    """Argument types and names of kernel function *function* from BTF (none if BTF lacks it)."""
    btf = b.btf
    ids = btf.ids(function, [Kind.FUNC])  # a miss is no error here: no suggestions
    if not ids:
        return [], []
    sig = signature(btf, ids[0])
    return [KernelType(btf, a.type_id) for a in sig.args], [a.name for a in sig.args]


class KprobeContext(_NamedArgs):
    """A kprobe's ``struct pt_regs``: arguments by index (or name, with BTF)."""

    def __init__(self, b, reg: VReg, function: str) -> None:
        super().__init__(b, reg)
        arch = os.uname().machine
        if arch not in PT_REGS_ARGS:
            raise ContextError(f"kprobe arguments are not mapped for {arch}")
        types, names = function_args(b, function)
        object.__setattr__(self, "arch", arch)
        object.__setattr__(self, "arg_types", types)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "regs", KernelType.named(b.btf, "struct pt_regs"))

    def _reg_ref(self, field: str) -> Ref:
        f = self.regs.member(field.split("[")[0])
        index = int(field.split("[")[1].rstrip("]")) if "[" in field else 0
        return Ref(self.b, self.reg, f.offset + 8 * index, u64, Space.CTX)

    def arg(self, index: int) -> Value:
        """Argument *index*: from its register, or (x86_64, at function entry) from the
        caller's stack, where arguments past the sixth sit above the return address."""
        regs = PT_REGS_ARGS[self.arch]
        if index >= len(regs) and self.arch == "x86_64":
            sp = self.b.load(self._reg_ref("sp"))
            v = self.b.load(Ref(self.b, sp.reg, 8 * (index - len(regs) + 1), u64, Space.KERNEL))
        elif index >= len(regs):
            raise ContextError(f"argument {index} is not in a register on {self.arch}")
        else:
            v = self.b.load(self._reg_ref(regs[index]))
        ty = self.arg_types[index] if index < len(self.arg_types) else None
        if ty is not None and ty.is_pointer:
            return Value(self.b, v.reg, PtrType(ty.pointee(), Space.KERNEL))
        return v

    @property
    def ret(self) -> Value:
        """The return value (kretprobe)."""
        return self.b.load(self._reg_ref(PT_REGS_RET[self.arch]))

    @property
    def sp(self) -> Value:
        """The stack pointer (at a kprobe: entry; at a kretprobe: after the return)."""
        return self.b.load(self._reg_ref("sp"))

    @property
    def caller(self) -> Value:
        """The return address at function entry: where the probed function was called from."""
        if self.arch in PT_REGS_LINK:
            return self.b.load(self._reg_ref(PT_REGS_LINK[self.arch]))
        if self.arch != "x86_64":
            raise ContextError(f"the caller's address is not mapped for {self.arch}")
        sp = self.b.load(self._reg_ref("sp"))
        return self.b.load(Ref(self.b, sp.reg, 0, u64, Space.KERNEL))



class PacketContext(Context):
    """``struct xdp_md`` or ``struct __sk_buff``: fields directly, packet via :meth:`packet`."""

    def __init__(self, b, reg: VReg, struct_name: str) -> None:
        super().__init__(b, reg)
        object.__setattr__(self, "struct", KernelType.named(b.btf, struct_name))

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        try:
            f = self.struct.member(name)
        except UnknownName:
            what = f"the context of this {self.b.prog_type} program ({self.struct.name})"
            raise unknown_attribute(what, name, self.struct.field_names,
                                    lambda: public_methods(type(self))) from None
        return Ref(self.b, self.reg, f.offset, KernelType(self.struct.btf, f.type_id), Space.CTX)

    def packet(self) -> Packet:
        # u32 fields: the verifier rewrites these 4-byte loads into the packet pointers
        data = self.b.load(Ref(self.b, self.reg, self.struct.member("data").offset, u32, Space.CTX))
        end = self.b.load(Ref(self.b, self.reg, self.struct.member("data_end").offset, u32, Space.CTX))
        return Packet(self.b, data.reg, end.reg)


class Packet:
    """Packet bytes between ``data`` and ``data_end``, parsed front to back.

    :meth:`header` runs its body only when the header lies before
    ``data_end`` (the bounds check the verifier wants) and advances the
    cursor past it inside the body; nest headers to parse deeper.
    :meth:`skip` advances by a computed length (IPv4 options); the next
    header re-checks the bound.
    """

    def __init__(self, b, data: VReg, end: VReg) -> None:
        self.b, self.end = b, end
        self.cursor = b.vreg("pkt")
        b.mov(self.cursor, data)

    @contextmanager
    def header(self, ty, *, advance: bool = True) -> Iterator[Ref]:
        """The body runs when a *ty* header fits at the cursor; it sees it as ``Ref``."""
        ty = self.b.resolve_type(ty)
        size = ty.size
        nxt = self.b.vreg("hdr_end")
        self.b.mov(nxt, self.cursor)
        self.b.emit(Op(OpCode.alu(AluOp.ADD), nxt, 0, 0, size))
        with self.b.if_(Value(self.b, nxt, PtrType(None, Space.PACKET)) <= Value(self.b, self.end, PtrType(None, Space.PACKET))):
            start = self.b.vreg("hdr")  # the header stays put when the cursor moves on
            self.b.mov(start, self.cursor)
            here = Ref(self.b, start, 0, ty, Space.PACKET)
            if advance:
                self.b.mov(self.cursor, nxt)
            yield here

    def skip(self, length: Operandish) -> None:
        """Advance the cursor by *length* bytes (checked by the next :meth:`header`)."""
        if isinstance(length, int):
            self.b.emit(Op(OpCode.alu(AluOp.ADD), self.cursor, 0, 0, length))
        else:
            v = length.rvalue()
            self.b.emit(Op(OpCode.alu(AluOp.ADD, Source.X), self.cursor, v.reg))



__all__ = ["ArgsContext", "Context", "ContextError", "KprobeContext", "Packet", "PacketContext",
           "TracepointContext", "entry", "function_args", "tracepoint_args"]
