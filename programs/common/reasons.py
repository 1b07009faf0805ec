"""Drop reason names from the running kernel, never from a hand-typed table.

The kernel's ``enum skb_drop_reason`` (BTF) is the source; without BTF the
``kfree_skb`` tracepoint's print format lists the same names.  Kernels
before 5.17 have no reasons at all: :func:`drop_reasons` returns None.
"""

from __future__ import annotations

import functools
import re

from pybpfasm.errors import BPFError
from pybpfasm.kernel import tracefs_path

PREFIX = "SKB_DROP_REASON_"
_SYMBOLIC = re.compile(r'\{\s*(\d+),\s*"(\w+)"\s*\}')


def tracefs_reasons() -> dict[int, str] | None:
    """``{value: name}`` from the ``skb:kfree_skb`` print format, or None without reasons."""
    try:
        with open(tracefs_path("events", "skb", "kfree_skb", "format")) as f:
            text = f.read()
    except (OSError, BPFError):
        return None
    if "reason;" not in text:
        return None
    return {int(v): name for v, name in _SYMBOLIC.findall(text)}


@functools.cache
def drop_reasons() -> dict[int, str] | None:
    """``{value: "NO_SOCKET", ...}`` for this kernel, or None if it has no drop reasons."""
    from pybpfasm.btf import BTF, BTFError

    try:
        enum = BTF.kernel().enum("skb_drop_reason")
        return {v: k[len(PREFIX):] if k.startswith(PREFIX) else k for k, v in enum.items()}
    except BTFError:
        return tracefs_reasons()


def reason_value(name: str) -> int:
    """The value of reason *name* (``NO_SOCKET`` or ``SKB_DROP_REASON_NO_SOCKET``)."""
    reasons = drop_reasons()
    if reasons is None:
        raise BPFError("this kernel reports no drop reasons (they arrived in 5.17)")
    short = name.upper()
    if short.startswith(PREFIX):
        short = short[len(PREFIX):]
    for value, known in reasons.items():
        if known == short:
            return value
    raise BPFError(f"unknown drop reason {name!r} (see 'pybpfasm btf enum skb_drop_reason')")


def reason_enum():
    """The record field type of a drop reason: decoded to its name (``NO_SOCKET``)."""
    from pybpfasm.dsl import kernel_enum, u32

    return kernel_enum("skb_drop_reason", u32, prefix=PREFIX, fallback=tracefs_reasons)
