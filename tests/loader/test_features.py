"""Feature probes answer what the kernel actually does, and agree with bpftool where it knows."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess

import pytest

from pybpfasm import features
from pybpfasm.btf import types as btf
from pybpfasm.btf.kinds import Kind
from pybpfasm.cli import main
from pybpfasm.isa import Mov, call, exit_
from pybpfasm.prog import ProgramSpec, VerifierError
from pybpfasm.sys import AttachType, Cmd, LinkType, MapType, ProgType, SyscallError, bpf, new_attr


@pytest.fixture(scope="module")
def bpftool_probe() -> dict:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (ci/test installs it with apt)")
    out = subprocess.run(["bpftool", "-j", "feature", "probe", "kernel"], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def test_map_types_agree_with_bpftool(bpftool_probe: dict) -> None:
    theirs = {k.removeprefix("have_").removesuffix("_map_type"): v
              for k, v in bpftool_probe["map_types"].items()}
    ours = {t.name.lower(): features.map_type(t) for t in MapType if t not in features.UNPROBEABLE_MAPS}
    compared = {name: theirs[name] for name in ours if name in theirs}
    assert len(compared) > 25
    assert {n: ours[n] for n in compared} == compared


def test_program_types_agree_with_bpftool(bpftool_probe: dict) -> None:
    theirs = {k.removeprefix("have_").removesuffix("_prog_type"): v
              for k, v in bpftool_probe["program_types"].items()}
    ours = {t.name.lower(): features.prog_type(t) for t in ProgType if t != ProgType.UNSPEC}
    # bpftool counts a type as missing when a trivial program fails for lack of an attach
    # target; we count the verifier's complaint about the missing target as proof the type exists
    differ = {n for n in theirs if n in ours and ours[n] != theirs[n]}
    assert differ <= {"tracing", "struct_ops"}
    assert len(set(theirs) & set(ours)) > 25


def test_answers_match_real_loads() -> None:
    for kind in (ProgType.SOCKET_FILTER, ProgType.XDP, ProgType.SCHED_CLS):
        assert features.prog_type(kind)
        ProgramSpec(kind, [Mov.imm(0, 0), exit_()]).load().close()
    for kind in (MapType.HASH, MapType.RINGBUF):
        assert features.map_type(kind)


def test_helper_answers_match_real_loads() -> None:
    xdp = features.helpers(ProgType.XDP)
    socket = features.helpers(ProgType.SOCKET_FILTER)
    assert xdp["bpf_xdp_adjust_head"] and "bpf_xdp_adjust_head" not in {n for n, ok in socket.items() if ok}
    assert features.helper_count() == len(xdp)
    # the kernel itself: ktime (5) loads from a socket filter, xdp_adjust_head (44) does not
    ProgramSpec(ProgType.SOCKET_FILTER, [call(5), Mov.imm(0, 0), exit_()]).load().close()
    with pytest.raises(VerifierError, match="bpf_xdp_adjust_head#44"):
        ProgramSpec(ProgType.SOCKET_FILTER, [call(44), Mov.imm(0, 0), exit_()]).load()


def test_link_probes_can_say_no() -> None:
    assert features.link_type(LinkType.CGROUP) and features.link_type(LinkType.TCX)
    # the probe's rule on a pairing the kernel has no link for: XDP program, cgroup attach type
    with ProgramSpec(ProgType.XDP, [Mov.imm(0, 0), exit_()]).load() as prog:
        attr = new_attr()
        attr.link_create.prog_fd = prog.fileno()
        attr.link_create.target_fd = 0xFFFF_FFFF
        attr.link_create.attach_type = AttachType.CGROUP_INET_INGRESS
        with pytest.raises(SyscallError) as info:
            bpf(Cmd.LINK_CREATE, attr)
    assert info.value.errno == errno.EINVAL


def test_unprobeable_types_say_so() -> None:
    with pytest.raises(ValueError, match="cannot be probed"):
        features.map_type(MapType.STRUCT_OPS)
    with pytest.raises(ValueError, match="cannot be probed"):
        features.attach_type(AttachType.XDP)


def test_btf_probes_can_fail() -> None:
    assert features.btf_kind(Kind.ENUM64)
    with pytest.raises(SyscallError):  # what btf_kind() turns into False: a dangling type id
        features.load_btf([btf.Ptr(99)]).close()


def test_features_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "--json", "--no-helpers"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["program_types"]["xdp"] is True
    assert report["map_types"]["hash"] is True
    assert set(report) == {"program_types", "map_types", "attach_types", "link_types", "btf_kinds"}


def test_features_command_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features"]) == 0
    out = capsys.readouterr().out
    assert "program types:" in out and "helpers:" in out
    assert any(line.split() == ["xdp", "yes"] for line in out.splitlines())
