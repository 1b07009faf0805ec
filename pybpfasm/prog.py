"""Loading programs: :class:`ProgramSpec` -> :class:`Program`, verifier errors, test runs.

Loading follows cilium/ebpf: the first attempt goes without a verifier log
(fast, and the kernel does no log formatting); if it fails, the load is
retried with a log, which grows until the kernel's whole message fits (the
kernel reports the size it needs in ``log_true_size`` since 6.4). A rejection
with a log becomes a :class:`VerifierError` naming the failing instruction in
our text form and the source line recorded on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
from typing import TYPE_CHECKING, Any, Iterator, Mapping, NamedTuple, Sequence, Union

from .errors import BPFError, UsageError
from .sys import (
    FD,
    AttachType,
    Cmd,
    FDOwner,
    ProgType,
    SyscallError,
    address,
    bpf,
    bpf_fd,
    ffi,
    new_attr,
    object_info,
    open_pinned,
    pin,
    raise_memlock,
)
from .sys.consts import TEST_RUN_ON_CPU

if TYPE_CHECKING:  # the assembler and BTF are imported when instructions need them
    from .btf.writer import ProgramBTF
    from .isa import Instruction

#: first and largest verifier log buffer (the kernel caps log_size at UINT_MAX >> 2)
LOG_SIZE_MIN = 64 * 1024
LOG_SIZE_MAX = (1 << 30) - 1
#: BPF_MAXINSNS: the program size limit before 5.2 and for unprivileged loads
MAXINSNS_UNPRIVILEGED = 4096
#: the kernel-internal ENOTSUPP, which bpf() can return as is
ENOTSUPP = 524

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.]")
#: a verifier log line that prints an instruction: "12: (bf) r1 = r6"
_LOG_INSN = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*?)\s*(?:;.*)?$")
#: verifier log lines that are statistics or register state, not the reason
_LOG_NOISE = re.compile(
    r"^(processed \d+ insns|verification time|stack depth|mark_precise|\d+: R\d|\d+: \(|"
    r"func#\d+ @|Live regs before insn:|\s+\d+: )"
)

Code = Union[Sequence["Instruction"], bytes]


def kernel_version_code() -> int:
    """LINUX_VERSION_CODE of the running kernel from ``uname -r`` (kprobes before 5.0 need it)."""
    parts = [*re.findall(r"\d+", os.uname().release)[:3], "0", "0"]
    major, minor, patch = (int(p) for p in parts[:3])
    return (major << 16) | (minor << 8) | min(patch, 255)


@dataclasses.dataclass
class ProgramSpec:
    """Everything BPF_PROG_LOAD needs.

    ``code`` is bytecode or instructions; instructions are assembled here
    (labels resolved, map names looked up in ``maps``: name -> map or fd).
    """

    type: ProgType
    code: Code
    maps: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    license: str = "GPL"
    name: str = ""
    expected_attach_type: AttachType | None = None
    attach_btf_id: int = 0
    attach_btf_obj_fd: int = 0
    flags: int = 0
    #: 0 means "the running kernel's" for kprobe programs, which kernels before 5.0 check
    kern_version: int = 0
    #: program BTF (func_info, line_info); made from the instructions when they have functions
    btf: ProgramBTF | None = None

    def __post_init__(self) -> None:
        self.type = ProgType(self.type)
        if not isinstance(self.code, (bytes, bytearray)):
            from .asm import assemble

            self.code = assemble(self.code, maps=self.maps)
            if self.btf is None and _refers_to_functions(self.code):
                from .btf.program import has_functions, program_btf

                if has_functions(self.code):
                    self.btf = program_btf(self.code)

    @property
    def instructions(self) -> list[Instruction]:
        """The program as instructions (decoded if it was given as bytes)."""
        if isinstance(self.code, (bytes, bytearray)):
            from .isa import decode

            return decode(self.code)
        return list(self.code)

    @property
    def bytecode(self) -> bytes:
        if isinstance(self.code, (bytes, bytearray)):
            return bytes(self.code)
        from .isa import encode

        return encode(self.code)

    def load(self, log_level: int = 0) -> Program:
        """Load into the kernel; ``log_level`` > 0 keeps the verifier log of a successful load."""
        return load(self, log_level)


def _refers_to_functions(code: Sequence[Instruction]) -> bool:
    """Whether *code* calls or points at a bpf-to-bpf function (only then can it need program BTF)."""
    from .isa import PseudoCall, PseudoLoad

    return any(insn.src == (PseudoCall.CALL if insn.is_call else PseudoLoad.FUNC)
               for insn in code if insn.is_call or insn.is_ld_imm64)


class VerifierError(BPFError):
    """The verifier rejected a program.

    ``str()`` is one line: the kernel's reason, the failing instruction in our
    text form and its source location. ``log`` holds the kernel's whole log.
    """

    def __init__(self, spec: ProgramSpec, errno_: int, log: str) -> None:
        self.errno = errno_
        self.log = log
        self.reason = verifier_reason(log) or _errno_text(errno_)
        self.index = failing_slot(log, self.reason)
        self.instruction = instruction_at_slot(spec, self.index)
        where = ""
        if self.index is not None:
            from .text import format_instruction

            text = format_instruction(self.instruction) if self.instruction else "?"
            where = f" at insn {self.index}: {text}"
            if self.instruction is not None and self.instruction.source is not None:
                where += f"  (at {self.instruction.source})"
        name = f" {spec.name!r}" if spec.name else ""
        super().__init__(f"verifier rejected program{name}: {self.reason}{where}")

    def details(self) -> str:
        """The one-line summary followed by the full verifier log."""
        return f"{self}\n\nverifier log:\n{self.log.rstrip()}"


def verifier_reason(log: str) -> str:
    """The kernel's reason: the last line of the log that is neither statistics nor state ("" if none)."""
    lines = log.rstrip("\n\0").splitlines()
    last_insn = max((i for i, line in enumerate(lines) if _LOG_INSN.match(line)), default=-1)
    tail = [line for line in lines[last_insn + 1 :] if line.strip() and not _LOG_NOISE.match(line)]
    if not tail:  # rejected before any instruction was printed (CFG checks, bad attributes)
        tail = [line for line in lines if line.strip() and not _LOG_NOISE.match(line)]
    return tail[-1].strip() if tail else ""


def _errno_text(err: int) -> str:
    return "not supported (ENOTSUPP)" if err == ENOTSUPP else os.strerror(err)


def failing_slot(log: str, reason: str) -> int | None:
    """Slot index of the failing instruction: the last one the log printed, else one the reason names."""
    slots = [int(m.group(1)) for m in map(_LOG_INSN.match, log.splitlines()) if m]
    if slots:
        return slots[-1]
    named = re.search(r"insn (\d+)", reason)
    return int(named.group(1)) if named else None


def instruction_at_slot(spec: ProgramSpec, slot: int | None) -> Instruction | None:
    """The instruction that starts at ``slot`` (``ld_imm64`` takes two slots)."""
    if slot is None:
        return None
    from .isa import DecodeError

    try:
        insns = spec.instructions
    except DecodeError:
        return None
    pos = 0
    for insn in insns:
        if pos == slot:
            return insn
        pos += insn.slots
    return None


class Program(FDOwner):
    """A loaded program. Owns its file descriptor: ``close()`` or use it as a context manager."""

    def __init__(self, fd: FD, spec: ProgramSpec | None, log: str = "") -> None:
        self._fd = fd
        self.spec = spec
        #: the verifier log of a load with log_level > 0
        self.log = log
        self._type = spec.type if spec is not None else None

    @property
    def type(self) -> ProgType:
        """The program type (asked of the kernel once for pinned programs)."""
        if self._type is None:
            self._type = ProgType(self.info().type)
        return self._type

    @classmethod
    def open_pinned(cls, path: str) -> Program:
        return cls(open_pinned(path), None)

    @classmethod
    def from_id(cls, prog_id: int) -> Program:
        attr = new_attr()
        attr.by_id.prog_id = prog_id
        return cls(bpf_fd(Cmd.PROG_GET_FD_BY_ID, attr), None)

    def __repr__(self) -> str:
        kind = self._type.name.lower() if self._type is not None else "opened"
        return f"<Program {kind} fd={self._fd!r}>"

    def pin(self, path: str) -> None:
        """Pin the program in bpffs (mounted on /sys/fs/bpf if missing)."""
        pin(self.fileno(), path)

    def info(self) -> Any:
        """The kernel's ``struct bpf_prog_info``."""
        return prog_info(self.fileno())

    def test_run(self, data: bytes = b"", *, ctx: bytes | None = None, repeat: int = 1,
                 data_out_size: int | None = None, cpu: int | None = None) -> TestRun:
        """Run the program once (or ``repeat`` times) on ``data`` and/or ``ctx`` (BPF_PROG_TEST_RUN)."""
        return test_run(self, data, ctx=ctx, repeat=repeat, data_out_size=data_out_size, cpu=cpu)


def prog_info(fd: int) -> Any:
    """``struct bpf_prog_info`` of the program behind ``fd``."""
    return object_info(fd, "struct bpf_prog_info")


# -- loading -------------------------------------------------------------------


def load(spec: ProgramSpec, log_level: int = 0) -> Program:
    """Load ``spec``; raises :class:`VerifierError` or :class:`SyscallError` with advice."""
    raise_memlock()
    code = spec.bytecode
    if not code:
        raise UsageError("cannot load an empty program")
    insns = ffi.from_buffer(code)
    license_ = ffi.new("char[]", spec.license.encode())
    attr = new_attr()
    p = attr.prog_load
    p.prog_type = spec.type
    p.insn_cnt = len(code) // 8
    p.insns = address(insns)
    p.license = address(license_)
    p.prog_flags = spec.flags
    p.attach_btf_id = spec.attach_btf_id
    p.attach_btf_obj_fd = spec.attach_btf_obj_fd
    if spec.expected_attach_type is not None:
        p.expected_attach_type = spec.expected_attach_type
    if spec.kern_version or spec.type == ProgType.KPROBE:
        p.kern_version = spec.kern_version or kernel_version_code()
    name = _NAME_CHARS.sub("_", spec.name)[:15].encode()
    ffi.memmove(p.prog_name, name, len(name))
    with contextlib.ExitStack() as keep:
        if spec.btf is not None:
            keep.enter_context(_program_btf(p, spec.btf))
        return _load_with_log(spec, attr, log_level)


@contextlib.contextmanager
def _program_btf(p: Any, btf: ProgramBTF) -> Iterator[None]:
    """Point BPF_PROG_LOAD's attributes at *btf*, loaded for the duration of the load."""
    buffers = [ffi.from_buffer(b) for b in (btf.func_info, btf.line_info)]
    with load_btf_blob(btf.btf) as fd:
        p.prog_btf_fd = fd.fileno()
        p.func_info_rec_size, p.func_info = btf.func_info_rec_size, address(buffers[0])
        p.func_info_cnt = len(btf.func_info) // btf.func_info_rec_size
        if btf.line_info:
            p.line_info_rec_size, p.line_info = btf.line_info_rec_size, address(buffers[1])
            p.line_info_cnt = len(btf.line_info) // btf.line_info_rec_size
        yield


def load_btf_blob(blob: bytes) -> FD:
    """BPF_BTF_LOAD: the kernel's descriptor of a BTF blob."""
    data = ffi.from_buffer(blob)
    attr = new_attr()
    attr.btf_load.btf = address(data)
    attr.btf_load.btf_size = len(blob)
    return bpf_fd(Cmd.BTF_LOAD, attr, hint="the kernel refused the program's BTF")


def _load_with_log(spec: ProgramSpec, attr: Any, log_level: int) -> Program:
    """BPF_PROG_LOAD, first without a log, then with one that grows until it fits."""
    p = attr.prog_load

    size = LOG_SIZE_MIN
    while True:
        log = ffi.new("char[]", size) if log_level else ffi.NULL
        p.log_level, p.log_buf, p.log_size = log_level, address(log), size if log_level else 0
        try:
            fd = bpf_fd(Cmd.PROG_LOAD, attr, hint="")
        except SyscallError as err:
            text = ffi.string(log).decode(errors="replace") if log_level else ""
            if log_level and err.errno == errno.ENOSPC and size < LOG_SIZE_MAX:
                size = min(max(size * 4, int(p.log_true_size)), LOG_SIZE_MAX)
                continue
            if not log_level:  # retry once with a log to learn why
                log_level = 1
                continue
            if text.strip():
                raise VerifierError(spec, err.errno, text) from None
            raise SyscallError(_what(spec), err.errno, _load_hint(spec, err.errno)) from None
        return Program(fd, spec, ffi.string(log).decode(errors="replace") if log_level else "")


def _what(spec: ProgramSpec) -> str:
    return f"load {spec.type.name.lower()} program" + (f" {spec.name!r}" if spec.name else "")


def _load_hint(spec: ProgramSpec, err: int) -> str | None:
    """One sentence for a load the kernel refused without a verifier log."""
    if err == errno.E2BIG:
        count = len(spec.bytecode) // 8
        if count > MAXINSNS_UNPRIVILEGED:
            return (f"the program has {count} instructions, more than this kernel accepts; "
                    "split it with bpf-to-bpf calls or tail calls")
        return "this kernel does not know one of the load attributes (it predates that feature)"
    if err == errno.EINVAL:
        return ("the kernel refused the load attributes before verifying: check that it "
                "supports this program type, expected attach type and attach BTF id "
                "(pybpfasm features)")
    return None  # the generic advice for the errno (EPERM: capabilities, lockdown)


# -- BPF_PROG_TEST_RUN -----------------------------------------------------------


class TestRun(NamedTuple):
    """What BPF_PROG_TEST_RUN reports: return value, mean duration (ns), output packet and ctx."""

    retval: int
    duration: int
    data: bytes
    ctx: bytes


TestRun.__test__ = False  # not a pytest test class


def test_run(prog: Program, data: bytes = b"", *, ctx: bytes | None = None, repeat: int = 1,
             data_out_size: int | None = None, cpu: int | None = None) -> TestRun:
    """Run ``prog`` in the kernel on ``data``/``ctx``; grows the output buffer when it is short.

    XDP, tc (sched_cls) and socket filters take a packet (at least an
    Ethernet header); raw tracepoints take only ``ctx`` (their u64 arguments)
    and run exactly once.
    """
    raw_tp = prog.type == ProgType.RAW_TRACEPOINT
    if raw_tp:  # the kernel runs these once, on the calling CPU, and writes no ctx back
        repeat = 0
    data_in = ffi.from_buffer(data) if data else ffi.NULL
    ctx_in = ffi.from_buffer(ctx) if ctx is not None else ffi.NULL
    out_size = data_out_size if data_out_size is not None else (len(data) + 256 if data else 0)
    while True:
        data_out = ffi.new("char[]", out_size) if out_size else ffi.NULL
        ctx_out = ffi.new("char[]", len(ctx)) if ctx and not raw_tp else ffi.NULL
        attr = new_attr()
        t = attr.test
        t.prog_fd = prog.fileno()
        t.data_in, t.data_size_in = address(data_in), len(data)
        t.data_out, t.data_size_out = address(data_out), out_size
        t.ctx_in, t.ctx_size_in = address(ctx_in), len(ctx or b"")
        t.ctx_out, t.ctx_size_out = address(ctx_out), len(ctx) if ctx_out else 0
        t.repeat = repeat
        if cpu is not None:
            t.flags, t.cpu = TEST_RUN_ON_CPU, cpu
        try:
            bpf(Cmd.PROG_TEST_RUN, attr, hint=_TEST_RUN_HINT)
        except SyscallError as err:
            if err.errno == errno.ENOSPC and data_out_size is None and t.data_size_out > out_size:
                out_size = int(t.data_size_out)
                continue
            raise
        data_len = min(int(t.data_size_out), out_size)
        return TestRun(
            retval=int(t.retval),
            duration=int(t.duration),
            data=ffi.buffer(data_out, data_len)[:] if out_size else b"",
            ctx=ffi.buffer(ctx_out, int(t.ctx_size_out))[:] if ctx_out else b"",
        )


_TEST_RUN_HINT = (
    "the kernel refused the test run: packet programs need a 14-byte Ethernet header "
    "(skb programs also a whole IPv4/IPv6 header when the ethertype names one), raw "
    "tracepoints take only ctx, and other program types cannot be test-run"
)
