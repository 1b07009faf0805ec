"""Sysctl names as ``sysctl(8)`` reads them, and writes that stay inside ``/proc/sys``.

A name is dotted (``net.ipv4.ip_forward``; a ``/`` inside a component stands for a
dot, as in ``net.ipv4.conf.eth0/100.forwarding``) or slashed (``net/ipv4/conf/eth0.100/
forwarding``), whichever separator comes first. Each component is letters, digits,
``_``, ``-`` and ``.``, and never ``.`` or ``..``: a topology file can only name a sysctl,
never another file of the host.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Tuple

from .errors import DeclarationError, LabError

PROC_SYS = "/proc/sys"
_COMPONENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_VALUE = re.compile(r"[\x20-\x7e\t]{0,256}")


def components(name: str) -> Tuple[str, ...]:
    """The path components of sysctl ``name`` under /proc/sys; DeclarationError if it is not one."""
    slashed = "/" in name and ("." not in name or name.index("/") < name.index("."))
    parts = name.split("/") if slashed else [part.replace("/", ".") for part in name.split(".")]
    if len(parts) > 16 or not all(_COMPONENT.fullmatch(p) and p not in (".", "..") for p in parts):
        raise DeclarationError(f"bad sysctl name {name!r}: use dotted names like net.ipv4.ip_forward")
    return tuple(parts)


def value(raw: object) -> str:
    """A sysctl value from a topology file: an integer or a short line of printable text."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, str) and _VALUE.fullmatch(raw):
        return raw
    raise DeclarationError(f"bad sysctl value {raw!r}: an integer or a short line of text")


def write(name: str, text: str) -> None:
    """Write ``text`` to sysctl ``name`` of the current network namespace.

    FileNotFoundError when this kernel (or this interface, not yet made) has no such
    sysctl; LabError when the name resolves outside /proc/sys or is not a file.
    """
    path = os.path.join(PROC_SYS, *components(name))
    real = os.path.realpath(path)
    if os.path.commonpath([real, PROC_SYS]) != PROC_SYS:
        raise LabError(f"sysctl {name} resolves to {real}, outside {PROC_SYS}")
    fd = os.open(real, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LabError(f"sysctl {name} is not a file")
        os.write(fd, text.encode())
    finally:
        os.close(fd)
