"""Program loads on the running kernel: every type, verifier errors, log growth, advice."""

from __future__ import annotations

import errno
import os
import uuid

import pytest

from pybpfasm import features, prog
from pybpfasm.btf import BTF, KERNEL_BTF
from pybpfasm.errors import BPFError
from pybpfasm.isa import Mov, exit_
from pybpfasm.prog import Program, ProgramSpec, VerifierError
from pybpfasm.sys import AttachType, ProgType, SyscallError, ffi
from pybpfasm.text import parse

RETURN_0 = [Mov.imm(0, 0), exit_()]
#: types a trivial program cannot load as: they need an attach target
NEEDS_TARGET = {ProgType.TRACING, ProgType.EXT, ProgType.LSM, ProgType.STRUCT_OPS}


@pytest.mark.parametrize("kind", [t for t in ProgType if t != ProgType.UNSPEC], ids=lambda t: t.name.lower())
def test_load_every_type(kind: ProgType) -> None:
    if not features.prog_type(kind):
        pytest.skip(f"{kind.name.lower()} programs: not in this kernel (or refused by lockdown)")
    if kind in NEEDS_TARGET:
        pytest.skip(f"{kind.name.lower()} programs need an attach target (tp_btf is tested below)")
    extra = features.PROG_LOAD_EXTRAS.get(kind, {})
    with ProgramSpec(kind, RETURN_0, name=f"t_{kind.name.lower()}", **extra).load() as p:
        info = p.info()
        assert info.type == kind
        assert ffi.string(info.name).decode() == f"t_{kind.name.lower()}"[:15]


def test_tp_btf_with_attach_btf_id() -> None:
    if not os.path.exists(KERNEL_BTF):
        pytest.skip("tp_btf needs kernel BTF")
    btf_id = BTF.kernel().lookup("btf_trace_kfree_skb")
    spec = ProgramSpec(ProgType.TRACING, RETURN_0, expected_attach_type=AttachType.TRACE_RAW_TP,
                       attach_btf_id=btf_id, name="tp_btf")
    with spec.load() as p:
        assert p.info().attach_btf_id == btf_id


def test_verifier_error_names_instruction_and_source_line() -> None:
    source = "r2 = 0x1234 ll\nr1 = *(u32 *)(r1 + 0)\nr0 = *(u32 *)(r2 + 0)\nexit\n"
    spec = ProgramSpec(ProgType.SOCKET_FILTER, parse(source, "bad.s"), name="bad")
    with pytest.raises(VerifierError) as info:
        spec.load()
    err = info.value
    # r0 = *(u32 *)(r2 + 0) dereferences a scalar: the third instruction, slot 3 after ld_imm64
    assert err.index == 3
    assert str(err.instruction.source) == "bad.s:3:1"
    assert "invalid mem access 'scalar'" in err.reason
    assert str(err) == (
        "verifier rejected program 'bad': R2 invalid mem access 'scalar' "
        "at insn 3: w0 = *(u32 *)(r2 + 0)  (at bad.s:3:1)"
    )
    assert "\n" not in str(err)
    assert err.log.rstrip() in err.details() and "processed" in err.log


def test_log_grows_until_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prog, "LOG_SIZE_MIN", 64)
    lines = "".join(f"r{1 + i % 9} = {i}\n" for i in range(200))
    spec = ProgramSpec(ProgType.SOCKET_FILTER, parse(lines + "exit\n", "long.s"))
    with pytest.raises(VerifierError) as info:  # r0 is never set
        spec.load()
    assert "R0 !read_ok" in info.value.reason
    assert info.value.log.startswith("func#0") or info.value.log.startswith("0: ")
    assert len(info.value.log) > 4096


def test_log_level_keeps_log_of_good_program() -> None:
    with ProgramSpec(ProgType.XDP, RETURN_0).load(log_level=2) as p:
        assert "processed 2 insns" in p.log
    with ProgramSpec(ProgType.XDP, RETURN_0).load() as p:
        assert p.log == ""


def test_too_many_instructions_says_what_to_do() -> None:
    code = Mov.imm(0, 0)
    spec = ProgramSpec(ProgType.SOCKET_FILTER, [code] * 1_000_001 + [exit_()])
    with pytest.raises(SyscallError) as info:
        spec.load()
    assert info.value.errno == errno.E2BIG
    assert "split it with bpf-to-bpf calls or tail calls" in str(info.value)


def test_einval_without_log_says_what_to_check() -> None:
    spec = ProgramSpec(ProgType.CGROUP_SOCK_ADDR, RETURN_0, expected_attach_type=AttachType.XDP)
    with pytest.raises(SyscallError) as info:
        spec.load()
    assert info.value.errno == errno.EINVAL
    assert str(info.value) == (
        "load cgroup_sock_addr program: Invalid argument: the kernel refused the load attributes "
        "before verifying: check that it supports this program type, expected attach type and "
        "attach BTF id (pybpfasm features)"
    )


def test_privileged_eperm_names_lockdown() -> None:
    spec = ProgramSpec(ProgType.LSM, RETURN_0, expected_attach_type=AttachType.LSM_MAC)
    try:
        spec.load().close()
    except VerifierError:
        pytest.skip("this kernel lets LSM programs reach the verifier (no lockdown)")
    except SyscallError as err:
        assert err.errno == errno.EPERM
        assert "kernel lockdown or a security module forbids it" in str(err)
        return
    pytest.fail("an LSM program without an attach target loaded")


def test_kprobe_gets_kern_version() -> None:
    spec = ProgramSpec(ProgType.KPROBE, RETURN_0)
    with spec.load() as p:
        assert p.info().type == ProgType.KPROBE
    release = os.uname().release.split(".")
    assert prog.kernel_version_code() >> 16 == int(release[0])


def test_pin_and_reopen_program() -> None:
    path = f"/sys/fs/bpf/pybpfasm-test-{uuid.uuid4().hex[:8]}"
    with ProgramSpec(ProgType.XDP, [Mov.imm(0, 2), exit_()], name="pinned").load() as p:
        p.pin(path)
        prog_id = p.info().id
    try:
        with Program.open_pinned(path) as again, Program.from_id(prog_id) as by_id:
            assert again.info().id == by_id.info().id == prog_id
            assert again.test_run(bytes(14)).retval == 2
    finally:
        os.unlink(path)


def test_empty_program_is_a_usage_error() -> None:
    with pytest.raises(BPFError, match="empty program"):
        ProgramSpec(ProgType.XDP, b"").load()
