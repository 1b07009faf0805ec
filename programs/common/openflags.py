"""open(2) flags by name, generated from Python's :mod:`os` constants (the host's libc values).

``names(flags)`` lists the access mode first (``O_RDONLY``, ``O_WRONLY``, ``O_RDWR``), then
every other flag set, a flag of several bits (``O_SYNC``, ``O_TMPFILE``) before the single
bits it contains; bits no name covers come last as hex (``0x8000``: ``O_LARGEFILE``, which
the kernel sets and Python's os module calls 0 on 64-bit hosts).
"""

from __future__ import annotations

import os

#: of names sharing a value, the one shown (as strace and the man page spell them)
PREFERRED = frozenset({"O_NONBLOCK", "O_SYNC"})


def _tables() -> tuple[dict[str, int], dict[str, int]]:
    """(access-mode names, other flag names) -> value, from the os module."""
    values = {n: getattr(os, n) for n in dir(os) if n.startswith("O_") and isinstance(getattr(os, n), int)}
    mask = values.pop("O_ACCMODE", 3)
    access = {n: values[n] for n in ("O_RDONLY", "O_WRONLY", "O_RDWR") if n in values}
    flags: dict[int, str] = {}
    for name in sorted(values):
        v = values[name]
        if name in access or v == 0 or v & mask:
            continue
        if v not in flags or name in PREFERRED:
            flags[v] = name
    return access, {n: v for v, n in flags.items()}


ACCESS, FLAGS = _tables()
ACCMODE = getattr(os, "O_ACCMODE", 3)
#: every name a filter may use
ALL = {**ACCESS, **FLAGS}
_ORDER = sorted(FLAGS.items(), key=lambda kv: (-bin(kv[1]).count("1"), kv[1]))


def names(flags: int) -> list[str]:
    """The names of *flags*: access mode, then flags, then unnamed bits in hex."""
    access = next((n for n, v in ACCESS.items() if v == flags & ACCMODE), hex(flags & ACCMODE))
    out, rest = [access], flags & ~ACCMODE
    for name, value in _ORDER:
        if rest & value == value:
            out.append(name)
            rest &= ~value
    bit = 1
    while rest:
        if rest & bit:
            out.append(hex(bit))
            rest &= ~bit
        bit <<= 1
    return out


def value(flag_names: list[str]) -> int:
    """The flags :func:`names` gave *flag_names* for."""
    return sum(ALL[n] if n in ALL else int(n, 16) for n in flag_names)


def matches(flags: int, wanted: str) -> bool:
    """Whether *flags* has flag *wanted* (an access mode is compared as the whole mode)."""
    if wanted in ACCESS:
        return flags & ACCMODE == ACCESS[wanted]
    return flags & FLAGS[wanted] == FLAGS[wanted]
