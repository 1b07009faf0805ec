"""XDP programs as test functions: typed inputs read from the packet, u64 results written back.

The test chooses the packet bytes, so every input is known; BPF_PROG_TEST_RUN
returns the packet, so every result can be read back (XDP's own return value
has only 32 bits).
"""

from __future__ import annotations

import struct
from typing import Callable, Sequence

from pybpfasm.dsl.builder import Builder
from pybpfasm.dsl.types import KernelType, PtrType, Scalar, Space, u64
from pybpfasm.dsl.values import Ref, Value
from pybpfasm.isa import Instruction
from pybpfasm.prog import ProgramSpec
from pybpfasm.sys import ProgType

XDP_ABORTED, XDP_PASS = 0, 2
SLOT = 8  # every input and output occupies 8 bytes of the packet


class PacketFrame:
    """A builder for an XDP program whose packet holds input slots, then output slots."""

    def __init__(self, inputs: Sequence[Scalar], outputs: int) -> None:
        self.inputs, self.outputs = list(inputs), outputs
        self.length = max(SLOT * (len(self.inputs) + outputs), 14)
        b = self.b = Builder("xdp")
        ctx_reg = b.vreg("ctx")
        b.mov(ctx_reg, 1)
        ctx = Value(b, ctx_reg, PtrType(KernelType.named(b.btf, "struct xdp_md"), Space.CTX))
        data = Value(b, ctx.data.rvalue().reg, PtrType(None, Space.PACKET))
        end = Value(b, ctx.data_end.rvalue().reg, PtrType(None, Space.PACKET))
        with b.if_(data + self.length > end):
            b.return_(XDP_ABORTED)
        self.data = data

    def input(self, k: int) -> Value:
        """Input slot *k*, loaded with its type (signed types sign-extend)."""
        return Ref(self.b, self.data.reg, SLOT * k, self.inputs[k], Space.PACKET).rvalue()

    def output(self, k: int, value: Value | int) -> None:
        """Write *value*'s 64-bit register image into output slot *k*."""
        Ref(self.b, self.data.reg, SLOT * (len(self.inputs) + k), u64, Space.PACKET).store(value)

    def finish(self, assemble: bool = True) -> list[Instruction]:
        """End with ``return XDP_PASS``; the program assembled, or only allocated."""
        self.b.return_(XDP_PASS)
        return self.b.assemble() if assemble else self.b.finish()

    def packet(self, values: Sequence[int]) -> bytes:
        """The packet that carries *values* in the input slots (outputs zeroed)."""
        data = b"".join(struct.pack("<Q", v % (1 << 64)) for v in values)
        return data.ljust(self.length, b"\0")

    def results(self, data: bytes) -> list[int]:
        base = SLOT * len(self.inputs)
        return [struct.unpack_from("<Q", data, base + SLOT * k)[0] for k in range(self.outputs)]


def load(insns: list[Instruction], name: str = "dsl_test"):
    return ProgramSpec(ProgType.XDP, insns, name=name).load()


def run_packet_program(inputs: Sequence[Scalar], outputs: int,
                       body: Callable[[PacketFrame], None],
                       cases: Sequence[Sequence[int]]) -> list[list[int]]:
    """Build *body* once, load it, run it on each input case; the outputs of each run."""
    frame = PacketFrame(inputs, outputs)
    body(frame)
    with load(frame.finish()) as prog:
        out = []
        for values in cases:
            run = prog.test_run(frame.packet(values))
            assert run.retval == XDP_PASS, f"program returned {run.retval} for {values}"
            out.append(frame.results(run.data))
        return out
