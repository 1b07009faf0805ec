"""Kernel functions that handle packets, as hooks: which argument is the packet, whether the
function can be traced at all, and whether this kernel can trace functions (kprobes, fentry).

::

    targets = resolve(read_functions(path))       # FUNCTION [arg=N head=OFF network=OFF] lines
    targets.traced                                # [Target(name, index, spec), ...]
    targets.skipped                               # {name: why}: not found, inlined, no skb argument
    kinds_available()                             # ["fentry", "kprobe"] as far as this kernel goes

BTF says which argument of a function is a ``struct sk_buff *``.  A function without BTF
(a module's, like vrouter's ``vr_packet`` ones) takes an argument spec instead: the argument
index of a pointer to a struct holding, at ``head=OFF``, a pointer to the packet's buffer and,
at ``network=OFF``, the u16 offset of its network header in that buffer.
"""

from __future__ import annotations

import errno
import functools
import os
import re
from dataclasses import dataclass, field

from pybpfasm.errors import BPFError, UsageError

from .hooks import kprobes_available

BTF_DIR_FILE = "/sys/kernel/btf/vmlinux"
SKB = "struct sk_buff *"
SKB_REF = "struct sk_buff **"
#: names the compiler gives a function it specialised, split or outlined
SUFFIXES = (".isra.0", ".constprop.0", ".part.0", ".cold")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_SPEC_KEYS = ("arg", "head", "network")


@dataclass(frozen=True)
class ArgSpec:
    """Where the packet is for a function without BTF: argument ``arg`` points to a struct
    with the buffer pointer at ``head`` and the u16 network header offset at ``network``."""

    arg: int
    head: int
    network: int


@dataclass(frozen=True)
class Target:
    """A function to trace: its name, its skb argument (index, and whether it is passed by
    reference, ``struct sk_buff **``), or an argument spec."""

    name: str
    index: int
    by_reference: bool = False
    spec: ArgSpec | None = None
    #: the module whose BTF has the function (None: the kernel's own)
    module: str | None = None


@dataclass(frozen=True)
class Targets:
    traced: tuple[Target, ...]
    skipped: dict[str, str] = field(default_factory=dict)


def read_functions(path: str) -> list[tuple[str, ArgSpec | None]]:
    """``-f FILE``: one function a line, optionally with ``arg=N head=OFF network=OFF``;
    blank lines and ``#`` comments are ignored.  Bad lines are one :class:`UsageError`."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"-f {path}: {getattr(err, 'strerror', None) or err}") from None
    out, seen = [], set()
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        name, *spec = words
        where = f"-f {path}:{number}"
        if not _NAME.fullmatch(name):
            raise UsageError(f"{where}: {name!r} is not a function name")
        if name in seen:
            raise UsageError(f"{where}: {name} is listed twice")
        seen.add(name)
        out.append((name, _spec(spec, where) if spec else None))
    if not out:
        raise UsageError(f"-f {path}: no functions in the file")
    return out


def _spec(words: list[str], where: str) -> ArgSpec:
    values = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key not in _SPEC_KEYS or key in values:
            raise UsageError(f"{where}: an argument spec is arg=N head=OFF network=OFF, not {word!r}")
        try:
            values[key] = int(value, 0)
        except ValueError:
            raise UsageError(f"{where}: {key}={value!r} is not a number") from None
        if not 0 <= values[key] < (6 if key == "arg" else 1 << 16):
            raise UsageError(f"{where}: {key}={values[key]} is out of range")
    missing = [k for k in _SPEC_KEYS if k not in values]
    if missing:
        raise UsageError(f"{where}: the argument spec lacks {', '.join(missing)}")
    return ArgSpec(**values)


def resolve(functions: list[tuple[str, ArgSpec | None]]) -> Targets:
    """Which of *functions* this kernel can trace, and why the others cannot (kallsyms for
    the symbol, BTF for the skb argument)."""
    from pybpfasm.btf import BTF, BTFError
    from pybpfasm.kernel import Kallsyms

    symbols = Kallsyms.load()
    btf = BTF.kernel()
    traced, skipped = [], {}
    for name, spec in functions:
        module = None
        try:
            sig = btf.func(name)
        except BTFError:
            module, sig = _module_func(name) if name in symbols else (None, None)
        if name not in symbols:
            renamed = [f"{name}{s}" for s in SUFFIXES if f"{name}{s}" in symbols]
            if renamed:
                skipped[name] = f"compiled as {renamed[0]} (list that name)"
            elif sig is not None:
                skipped[name] = "inlined (in BTF, not in kallsyms)"
            else:
                skipped[name] = "not found"
            continue
        if spec is not None:
            traced.append(Target(name, spec.arg, spec=spec, module=module))
            continue
        if sig is None:
            skipped[name] = "no BTF (give an argument spec: arg=N head=OFF network=OFF)"
            continue
        found = [(a.index, a.type_name == SKB_REF) for a in sig.args if a.type_name in (SKB, SKB_REF)]
        if not found:
            skipped[name] = "no struct sk_buff * argument"
            continue
        traced.append(Target(name, *found[0], module=module))
    return Targets(tuple(traced), skipped)


def _module_func(name: str):
    """(module, signature) of a module function, from the BTF of the loaded modules."""
    from pybpfasm.btf import BTF, BTFError

    folder = os.path.dirname(BTF_DIR_FILE)
    try:
        modules = sorted(m for m in os.listdir(folder) if m != "vmlinux")
    except OSError:
        return None, None
    for module in modules:
        try:
            return module, BTF.module(module).func(name)
        except BTFError:
            continue
    return None, None


@functools.cache
def fentry_loads() -> str | None:
    """Why this kernel refuses fentry programs (None: it loads them), asked by loading one."""
    from pybpfasm.isa import R0, Mov, exit_
    from pybpfasm.kernel import Kallsyms
    from pybpfasm.link import fentry_spec
    from pybpfasm.sys import SyscallError

    target = next((n for n in ("__x64_sys_getpgid", "__arm64_sys_getpgid", "__se_sys_getpgid")
                   if n in Kallsyms.load()), None)
    if target is None:
        return "no getpgid function to probe fentry with"
    try:
        prog = fentry_spec(target, [Mov.imm(R0, 0), exit_()], name="pdt_probe").load()
    except SyscallError as err:
        return f"the kernel refuses tracing programs ({errno.errorcode.get(err.errno, err.errno)})"
    except BPFError as err:
        return f"the kernel refuses tracing programs ({err})"
    prog.close()
    return None


def kinds_available() -> dict[str, str | None]:
    """``{"fentry": why not or None, "kprobe": why not or None}``."""
    return {"fentry": fentry_loads(),
            "kprobe": None if kprobes_available() else "no kprobes (CONFIG_KPROBES unset)"}


def arch_sp_at_return() -> int:
    """How far the stack pointer moves from a kprobe at entry to its kretprobe (the return
    address popped on x86; arm64 returns through a register)."""
    machine = os.uname().machine
    table = {"x86_64": 8, "aarch64": 0}
    if machine not in table:
        raise UsageError(f"pkt-tracer pairs kprobes with kretprobes by stack pointer on "
                         f"{', '.join(table)}, not {machine}: use --hook fentry")
    return table[machine]
