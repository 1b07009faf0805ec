"""Where a compiled filter reads a frame's bytes from, in the program that runs it.

- :class:`SkbBytes` for skb hooks (tracepoints, raw tracepoints, kprobes):
  the bytes are kernel memory, read with ``bpf_probe_read_kernel`` one field
  at a time from ``skb->head + skb->mac_header``.  An skb without an Ethernet
  header (not set yet on transmit before L2, or an L3 device) is seen as a
  frame whose 14-byte header is zeros and ``skb->protocol``, followed by the
  network header.  Only the linear part is readable (``skb->tail``): a load
  past it rejects, as a load past libpcap's snapshot length does.
- :class:`DirectBytes` for XDP and tc: direct packet access between ``data``
  and ``data_end``, with the bounds checks the verifier wants.

tc and skb hooks see skbs, whose VLAN tag the kernel may hold beside the bytes
(``vlan_tci``): they give it to the filter as ancillary values, as the kernel
gives them to classic BPF.

Both give big-endian loads as host-order ``u32`` values and jump to the
filter's reject label for a load that is out of bounds.
"""

from __future__ import annotations

from pybpfasm.dsl.ir import FP, Op
from pybpfasm.dsl.scalars import be16, be32, u8, u32, u64
from pybpfasm.dsl.types import PtrType, Space
from pybpfasm.dsl.values import Value
from pybpfasm.helpers import has_helper
from pybpfasm.isa import AluOp, Class, JumpOp, Mode, OpCode, Size, Source

from . import SKB_FIELDS
from .skbvlan import offloaded_vlan, vlan_fields

ETH_HLEN = 14
#: the largest offset a packet pointer may carry (the verifier's MAX_PACKET_OFF)
MAX_PACKET_OFF = 0xFFFF
#: skb->mac_header when no MAC header was set ((u16)~0U)
MAC_UNSET = 0xFFFF
_BIG = {1: u8, 2: be16, 4: be32}


def _host_order(b, value: Value, size: int) -> Value:
    return value if size == 1 else b.byteswap(value)


def _jump_if(b, op: JumpOp, reg, operand, target: str, *, wide: bool = True) -> None:
    """``if reg op operand goto target`` (operand an immediate or a register)."""
    if isinstance(operand, int):
        b.emit(Op(OpCode.jump(op, jmp32=not wide), reg, 0, 0, operand, reference=target))
    else:
        b.emit(Op(OpCode.jump(op, Source.X, jmp32=not wide), reg, operand, reference=target))


def _add(b, reg, operand, *, name: str = "pf") -> object:
    """A new register holding ``reg + operand`` (64-bit)."""
    out = b.vreg(name)
    b.mov(out, reg)
    if isinstance(operand, int):
        if operand:
            b.emit(Op(OpCode.alu(AluOp.ADD), out, 0, 0, operand))
    else:
        b.emit(Op(OpCode.alu(AluOp.ADD, Source.X), out, operand))
    return out


def _vlan_values(b, present, tci: Value) -> dict[str, object]:
    """``vlan_present``, ``vlan_tci`` and ``vlan_shift`` (0 with a tag beside the bytes, else 4)."""
    flag, shift = b.var(0, u32), b.var(4, u32)
    with b.if_(present):
        flag.set(1)
        shift.set(0)
    return {"vlan_present": flag, "vlan_tci": tci, "vlan_shift": shift}


class DirectBytes:
    """The packet of an XDP or tc program (``ctx`` a :class:`~pybpfasm.dsl.context.PacketContext`)."""

    def __init__(self, b, ctx) -> None:
        self.b, self.ctx = b, ctx
        struct = ctx.struct
        self.skb = struct.name == "struct __sk_buff"  # tc (else XDP's struct xdp_md)
        self.values: dict[str, object] = {}
        data = b.vreg("data")
        end = b.vreg("data_end")
        b.emit(Op(Class.LDX | Mode.MEM | Size.W, data, ctx.reg, struct.member("data").offset))
        b.emit(Op(Class.LDX | Mode.MEM | Size.W, end, ctx.reg, struct.member("data_end").offset))
        self.data, self.end = data, end
        if self.skb:  # tc: the skb's length; XDP: what is there
            self.wire = b.load(ctx.len)
        else:
            wire = b.vreg("len")
            b.mov(wire, end)
            b.emit(Op(OpCode.alu(AluOp.SUB, Source.X), wire, data))
            self.wire = Value(b, wire, u32)

    def prepare(self, names: set[str]) -> None:
        if names - {"len"}:  # tc only: the raw frames of XDP have no ancillary values
            present = self.b.load(self.ctx.vlan_present)
            self.values = _vlan_values(self.b, present != 0, self.b.load(self.ctx.vlan_tci))

    def length(self) -> Value:
        return self.wire

    def ancillary(self, name: str):
        return self.values[name]

    def load(self, offset: int | Value, size: int, reject: str) -> Value:
        b = self.b
        if isinstance(offset, int):
            if offset + size > MAX_PACKET_OFF:
                b.emit(Op(OpCode.jump(JumpOp.JA), reference=reject))
                return Value(b, b.value(0).reg, u32)
            at = _add(b, self.data, offset)
        else:
            _jump_if(b, JumpOp.JGT, offset.rvalue().reg, MAX_PACKET_OFF, reject)
            at = _add(b, self.data, offset.rvalue().reg)
        after = _add(b, at, size)
        _jump_if(b, JumpOp.JGT, after, self.end, reject)
        reg = b.vreg("byte" if size == 1 else "word")
        b.emit(Op(Class.LDX | Mode.MEM | Size.of(size), reg, at, 0))
        return _host_order(b, Value(b, reg, _BIG[size]), size)


class SkbBytes:
    """The frame of a ``struct sk_buff *`` (a kernel pointer value) in a tracing program.

    *fields* may be a copy the caller already made with ``b.read`` that holds
    :func:`~pybpfasm.pcapfilter.skb_fields` (one probe read for both); otherwise they
    are read here.  ``len`` and ``data`` are read only when the filter asks for the length.
    """

    skb = True

    def __init__(self, b, skb_ptr: Value, fields=None) -> None:
        self.b = b
        self.ref = skb_ptr.cast("struct sk_buff").deref()
        self.vlan = vlan_fields(b)
        hdr = fields if fields is not None else b.read(self.ref, *self.vlan, "vlan_tci", *SKB_FIELDS,
                                                          name="sk_buff packet fields")
        self.hdr = hdr
        self.values: dict[str, object] = {}
        mac, net = hdr.mac_header.rvalue(), hdr.network_header.rvalue()
        self.protocol = hdr.protocol.to_host()
        #: 0 where the skb has an Ethernet header, 14 where the filter sees a made-up one
        self.floor = b.var(ETH_HLEN, u64)
        self.start = b.var(net - ETH_HLEN, u64)
        with b.if_((mac != MAC_UNSET) & (mac != net)):
            self.floor.set(0)
            self.start.set(mac)
        self.head = Value(b, hdr.head.rvalue().reg, u64)
        self.base = self.head + self.start
        self.cap = hdr.tail.rvalue() - self.start

    def prepare(self, names: set[str]) -> None:
        b = self.b
        if "len" in names:
            data = Value(b, self.ref.data.rvalue().reg, u64)
            self.values["len"] = Value(b, (self.ref.len.rvalue() + (data - self.head) - self.start).reg, u32)
        if names - {"len"}:
            present = offloaded_vlan(self.hdr, self.vlan) & (self.floor == 0)  # a made-up header has none
            self.values.update(_vlan_values(b, present, self.hdr.vlan_tci.rvalue()))

    def length(self) -> Value:
        return self.values["len"]

    def ancillary(self, name: str):
        return self.values[name]

    def load(self, offset: int | Value, size: int, reject: str) -> Value:
        b = self.b
        if isinstance(offset, int) and offset + size <= ETH_HLEN:
            value = b.var(self._made_up(offset, size), u32)
            with b.if_(self.floor == 0):
                value.set(self._read(offset, size, reject))
            return value
        if isinstance(offset, int):
            if offset < ETH_HLEN:  # straddles a made-up header: reject
                _jump_if(b, JumpOp.JNE, self.floor.reg, 0, reject)
            end = offset + size
            _jump_if(b, JumpOp.JGT, b.value(end).reg, self.cap.reg, reject)
        else:
            off = offset.rvalue()
            _jump_if(b, JumpOp.JGT, self.floor.reg, off.reg, reject)
            end = _add(b, off.reg, size)
            _jump_if(b, JumpOp.JGT, end, self.cap.reg, reject)
        return self._read(offset, size, reject)

    def _read(self, offset: int | Value, size: int, reject: str) -> Value:
        b = self.b
        at = _add(b, self.base.reg, offset if isinstance(offset, int) else offset.rvalue().reg)
        slot = b.scratch()
        dst = Value(b, _add(b, FP, slot), PtrType(None, Space.STACK))
        helper = "probe_read_kernel" if has_helper("probe_read_kernel") else "probe_read"  # before 5.5
        ret = b.call(helper, dst, size, Value(b, at, u64))
        _jump_if(b, JumpOp.JNE, ret.reg, 0, reject)
        reg = b.vreg("pkt")
        b.emit(Op(Class.LDX | Mode.MEM | Size.of(size), reg, FP, slot))
        return _host_order(b, Value(b, reg, _BIG[size]), size)

    def _made_up(self, offset: int, size: int) -> int | Value:
        """The bytes at *offset* of the made-up header: zeros, then the protocol at 12."""
        end = offset + size
        if end <= 12:
            return 0
        shifted = self.protocol >> (8 * (ETH_HLEN - end)) if end < ETH_HLEN else self.protocol
        return shifted & ((1 << 8 * size) - 1) if size < 2 or end < ETH_HLEN else shifted
