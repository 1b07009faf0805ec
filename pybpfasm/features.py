"""Kernel feature probes: program, map, attach and link types, BTF kinds, helpers per program type.

Each probe asks the running kernel directly, with a tiny program assembled by
our own assembler, a minimal map or a minimal BTF blob, and is memoised for
the life of the process. A probe answers ``True``/``False``; a probe the
kernel refuses for lack of privilege raises :class:`SyscallError` instead of
answering, so "unsupported" never means "not allowed".
"""

from __future__ import annotations

import errno
import functools
import mmap
import re
from typing import TYPE_CHECKING, Any

from .maps import MapSpec
from .prog import ProgramSpec, VerifierError, load_btf_blob
from .sys import (
    AttachType,
    Cmd,
    LinkType,
    MapFlag,
    MapType,
    ProgFlag,
    ProgType,
    SyscallError,
    bpf_fd,
    new_attr,
)
from .sys.errors import has_bpf_capability

if TYPE_CHECKING:  # BTF and the assembler are imported by the probes that use them
    from .btf.kinds import Kind

#: program types whose loads need more than a type (kernel-checked attach types, flags)
PROG_LOAD_EXTRAS: dict[ProgType, dict[str, Any]] = {
    ProgType.CGROUP_SOCK_ADDR: {"expected_attach_type": AttachType.CGROUP_INET4_CONNECT},
    ProgType.SK_LOOKUP: {"expected_attach_type": AttachType.SK_LOOKUP},
    ProgType.CGROUP_SOCKOPT: {"expected_attach_type": AttachType.CGROUP_GETSOCKOPT},
    ProgType.NETFILTER: {"expected_attach_type": AttachType.NETFILTER},
    ProgType.LSM: {"expected_attach_type": AttachType.LSM_MAC},
    ProgType.SYSCALL: {"flags": ProgFlag.SLEEPABLE},
}

#: attach types the kernel checks when it loads a program of the given type
ATTACH_PROG_TYPES: dict[AttachType, ProgType] = {
    **{a: ProgType.CGROUP_SKB for a in (AttachType.CGROUP_INET_INGRESS,
                                        AttachType.CGROUP_INET_EGRESS)},
    **{a: ProgType.CGROUP_SOCK for a in (
        AttachType.CGROUP_INET_SOCK_CREATE, AttachType.CGROUP_INET_SOCK_RELEASE,
        AttachType.CGROUP_INET4_POST_BIND, AttachType.CGROUP_INET6_POST_BIND)},
    **{a: ProgType.CGROUP_SOCK_ADDR for a in AttachType if re.match(
        r"CGROUP_(INET[46]_(BIND|CONNECT|GETPEERNAME|GETSOCKNAME)|UDP[46]_(SEND|RECV)MSG|UNIX_)",
        a.name)},
    **{a: ProgType.CGROUP_SOCKOPT for a in (AttachType.CGROUP_GETSOCKOPT,
                                            AttachType.CGROUP_SETSOCKOPT)},
    **{a: ProgType.SK_REUSEPORT for a in (AttachType.SK_REUSEPORT_SELECT,
                                          AttachType.SK_REUSEPORT_SELECT_OR_MIGRATE)},
    AttachType.SK_LOOKUP: ProgType.SK_LOOKUP,
    AttachType.NETFILTER: ProgType.NETFILTER,
}

#: link types probed by BPF_LINK_CREATE with an invalid target: the program type and
#: attach type that make one; a kernel without the link answers EINVAL, one with it
#: complains about the target (EBADF, ENODEV, EAFNOSUPPORT ...)
LINK_PROBES: dict[LinkType, tuple[ProgType, AttachType]] = {
    LinkType.CGROUP: (ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS),
    LinkType.NETNS: (ProgType.SK_LOOKUP, AttachType.SK_LOOKUP),
    LinkType.PERF_EVENT: (ProgType.TRACEPOINT, AttachType.PERF_EVENT),
    LinkType.NETFILTER: (ProgType.NETFILTER, AttachType.NETFILTER),
    LinkType.TCX: (ProgType.SCHED_CLS, AttachType.TCX_INGRESS),
    LinkType.SOCKMAP: (ProgType.SK_SKB, AttachType.SK_SKB_STREAM_VERDICT),
}
_INVALID_TARGET = 0xFFFF_FFFF

_MAP_PROBE_SPECS: dict[MapType, dict[str, Any]] = {
    MapType.LPM_TRIE: {"key": 8, "value": 4},
    MapType.STACK_TRACE: {"value": 8},
    MapType.RINGBUF: {"max_entries": mmap.PAGESIZE},
    MapType.USER_RINGBUF: {"max_entries": mmap.PAGESIZE},
    MapType.ARENA: {"key": 0, "value": 0, "flags": MapFlag.MMAPABLE},
    # key: struct bpf_cgroup_storage_key {u64 cgroup_inode_id; u32 attach_type;}
    MapType.CGROUP_STORAGE: {"key": 16, "max_entries": 0},
    MapType.PERCPU_CGROUP_STORAGE: {"key": 16, "max_entries": 0},
    MapType.ARRAY_OF_MAPS: {"inner": MapSpec(MapType.ARRAY)},
    MapType.HASH_OF_MAPS: {"inner": MapSpec(MapType.ARRAY)},
}
#: local storage maps: created with a BTF key and value type
_STORAGE_MAPS = frozenset({MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
                           MapType.CGRP_STORAGE})
#: map types a probe cannot create without a kernel type to implement (struct_ops)
UNPROBEABLE_MAPS = frozenset({MapType.UNSPEC, MapType.STRUCT_OPS})

_UNSUPPORTED_ERRNOS = frozenset({errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP, 524})
_HELPER_REJECTED = re.compile(r"(invalid func|unknown func|cannot use helper|not supported)")


def _refuse_unprivileged(err: SyscallError) -> None:
    """Re-raise a permission error unless this process is privileged (then: lockdown, unsupported)."""
    if err.errno == errno.EPERM and not has_bpf_capability():
        raise err


@functools.cache
def prog_type(kind: ProgType, **extra: Any) -> bool:
    """Whether the kernel knows program type ``kind``.

    A trivial program is loaded; a verifier complaint (such as a missing attach
    BTF id) still proves the type is known, a refusal without a log does not.
    """
    options = {**PROG_LOAD_EXTRAS.get(kind, {}), **extra}
    spec = ProgramSpec(kind, _return_zero(), name="probe", **options)
    try:
        spec.load().close()
    except VerifierError:
        return True
    except SyscallError as err:
        _refuse_unprivileged(err)
        return False
    return True


@functools.cache
def attach_type(kind: AttachType) -> bool:
    """Whether the kernel knows attach type ``kind`` (only those checked at load: :data:`ATTACH_PROG_TYPES`)."""
    prog = ATTACH_PROG_TYPES.get(kind)
    if prog is None:
        raise ValueError(f"attach type {kind.name} cannot be probed by a program load")
    return prog_type(prog, expected_attach_type=kind)


@functools.cache
def link_type(kind: LinkType) -> bool:
    """Whether the kernel has links of type ``kind`` (those in :data:`LINK_PROBES`)."""
    if kind not in LINK_PROBES:
        raise ValueError(f"link type {kind.name} cannot be probed without attaching")
    prog_kind, attach = LINK_PROBES[kind]
    if not prog_type(prog_kind) or (attach in ATTACH_PROG_TYPES and not attach_type(attach)):
        return False
    options = {**PROG_LOAD_EXTRAS.get(prog_kind, {}), "expected_attach_type": attach}
    with ProgramSpec(prog_kind, _return_zero(), name="probe", **options).load() as prog:
        attr = new_attr()
        attr.link_create.prog_fd = prog.fileno()
        attr.link_create.target_fd = _INVALID_TARGET
        attr.link_create.attach_type = attach
        try:
            bpf_fd(Cmd.LINK_CREATE, attr).close()  # not expected: nothing has that fd or ifindex
        except SyscallError as err:
            _refuse_unprivileged(err)
            return err.errno != errno.EINVAL
    return True


@functools.cache
def map_type(kind: MapType) -> bool:
    """Whether the kernel can create a map of type ``kind``."""
    if kind in UNPROBEABLE_MAPS:
        raise ValueError(f"map type {kind.name} cannot be probed")
    try:
        if kind in _STORAGE_MAPS:
            _create_storage_map(kind).close()
        else:
            spec = MapSpec(kind, **{"key": 4, "value": 4, **_MAP_PROBE_SPECS.get(kind, {})})
            spec.create().close()
    except SyscallError as err:
        _refuse_unprivileged(err)
        return False
    return True


@functools.cache
def xdp_broadcast() -> bool:
    """Whether ``bpf_redirect_map`` takes ``BPF_F_BROADCAST`` (5.13): a test run of
    ``return redirect_map(empty devmap, 0, BPF_F_BROADCAST | XDP_PASS)`` answers XDP_REDIRECT
    where it does (the devmap is read when the frame is sent), XDP_ABORTED where it does not."""
    from .helpers import helper_id
    from .isa import Mov, call, exit_, ld_map_fd
    from .sys.consts import REDIRECT_BROADCAST

    xdp_pass, xdp_redirect = 2, 4  # enum xdp_action, the same in every kernel
    with MapSpec(MapType.DEVMAP_HASH, 4, 4, 1).create() as devmap:
        code = [ld_map_fd(1, "ports"), Mov.imm(2, 0), Mov.imm(3, REDIRECT_BROADCAST | xdp_pass),
                call(helper_id("redirect_map")), exit_()]
        try:
            with ProgramSpec(ProgType.XDP, code, maps={"ports": devmap}, name="probe").load() as prog:
                return prog.test_run(bytes(14)).retval == xdp_redirect
        except SyscallError as err:
            _refuse_unprivileged(err)
            return False


def _create_storage_map(kind: MapType) -> Any:
    from .btf.kinds import Kind

    with load_btf(_btf_kind_probes()[Kind.INT]) as btf_fd:
        attr = new_attr()
        mc = attr.map_create
        mc.map_type, mc.key_size, mc.value_size = kind, 4, 4
        mc.map_flags = MapFlag.NO_PREALLOC
        mc.btf_fd, mc.btf_key_type_id, mc.btf_value_type_id = btf_fd.fileno(), 1, 1
        return bpf_fd(Cmd.MAP_CREATE, attr)


def _helper_log(kind: ProgType, helper_id: int) -> str:
    """The verifier log (level 2) of a program of type ``kind`` calling helper ``helper_id``."""
    from .isa import call

    spec = ProgramSpec(kind, [call(helper_id), *_return_zero()], name="probe",
                       **PROG_LOAD_EXTRAS.get(kind, {}))
    try:
        with spec.load(log_level=2) as prog:
            return prog.log
    except VerifierError as err:
        return err.log
    except SyscallError as err:
        _refuse_unprivileged(err)
        return ""


@functools.cache
def helper_count() -> int:
    """Highest helper id this kernel knows (probed with socket filters, which every kernel has)."""
    helper_id = 1
    while f"invalid func unknown#{helper_id}" not in _helper_log(ProgType.SOCKET_FILTER, helper_id):
        helper_id += 1
    return helper_id - 1


@functools.cache
def helpers(kind: ProgType) -> dict[str, bool]:
    """Helper name -> usable from programs of type ``kind``; names come from the verifier log.

    Empty when the kernel does not know the type or rejects its trivial
    program before checking calls (types that need an attach target).
    """
    if not prog_type(kind):
        return {}
    found: dict[str, bool] = {}
    for helper_id in range(1, helper_count() + 1):
        log = _helper_log(kind, helper_id)
        name = re.search(rf"(\w+)#{helper_id}\b", log)
        if name is None:  # the verifier stopped before the call
            return {}
        found[name.group(1)] = not _HELPER_REJECTED.search(log)
    return found


def load_btf(types: list[Any]) -> Any:
    """Load a BTF blob holding ``types`` (ids from 1); returns the owning FD."""
    from .btf.writer import BTFBuilder

    builder = BTFBuilder()
    for t in types:
        builder.add(t)
    return load_btf_blob(builder.build().btf)


def _return_zero() -> list[Any]:
    """``r0 = 0; exit``: the program of most probes."""
    from .isa import Mov, exit_

    return [Mov.imm(0, 0), exit_()]


@functools.cache
def _btf_kind_probes() -> dict[Kind, list[Any]]:
    """For each kind: a BTF blob (after type 1, ``int``) whose last type has that kind."""
    from .btf import types as btf
    from .btf.kinds import IntEncoding, Kind

    int_ = btf.Int("int", 4, 32, 0, IntEncoding.SIGNED)
    member = (btf.Member("a", 1, 0),)
    proto = btf.FuncProto(1, (btf.Param("a", 1),))
    return {
        Kind.INT: [int_],
        Kind.PTR: [int_, btf.Ptr(1)],
        Kind.ARRAY: [int_, btf.Array(1, 1, 2)],
        Kind.STRUCT: [int_, btf.Struct("s", 4, member)],
        Kind.UNION: [int_, btf.Union("u", 4, member)],
        Kind.ENUM: [int_, btf.Enum("e", 4, (btf.EnumValue("A", 1),))],
        Kind.FWD: [int_, btf.Fwd("f")],
        Kind.TYPEDEF: [int_, btf.Typedef("t", 1)],
        Kind.VOLATILE: [int_, btf.Volatile(1)],
        Kind.CONST: [int_, btf.Const(1)],
        Kind.RESTRICT: [int_, btf.Ptr(1), btf.Restrict(2)],
        Kind.FUNC_PROTO: [int_, proto],
        Kind.FUNC: [int_, proto, btf.Func("f", 2)],
        Kind.VAR: [int_, btf.Var("v", 1)],
        Kind.DATASEC: [int_, btf.Var("v", 1), btf.Datasec(".data", 4, (btf.VarSecinfo(2, 0, 4),))],
        Kind.FLOAT: [int_, btf.Float("float", 4)],
        Kind.DECL_TAG: [int_, btf.Struct("s", 4, member), btf.DeclTag("tag", 2, -1)],
        Kind.TYPE_TAG: [int_, btf.TypeTag("tag", 1), btf.Ptr(2)],
        Kind.ENUM64: [int_, btf.Enum64("e", 8, (btf.EnumValue("A", 1 << 40),))],
    }


@functools.cache
def btf_kind(kind: Kind) -> bool:
    """Whether the kernel accepts BTF that uses ``kind``."""
    try:
        load_btf(_btf_kind_probes()[kind]).close()
    except SyscallError as err:
        _refuse_unprivileged(err)
        return False
    return True


def report(with_helpers: bool = True) -> dict[str, dict[str, Any]]:
    """Every probe's answer, by section and lower-case name (the data of ``pybpfasm features``)."""
    progs = {t.name.lower(): prog_type(t) for t in ProgType if t != ProgType.UNSPEC}
    result: dict[str, dict[str, Any]] = {
        "program_types": progs,
        "map_types": {t.name.lower(): map_type(t) for t in MapType if t not in UNPROBEABLE_MAPS},
        "attach_types": {t.name.lower(): attach_type(t) for t in ATTACH_PROG_TYPES},
        "link_types": {t.name.lower(): link_type(t) for t in LINK_PROBES},
        "btf_kinds": {k.name.lower(): btf_kind(k) for k in _btf_kind_probes()},
    }
    if with_helpers:
        result["helpers"] = {
            t.name.lower(): sorted(name for name, ok in helpers(t).items() if ok)
            for t in ProgType if t != ProgType.UNSPEC and progs[t.name.lower()]
        }
    return result
