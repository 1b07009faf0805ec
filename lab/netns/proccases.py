"""execsnoop's and opensnoop's demo cases on the scripted process workloads
(:mod:`pybpfasm.lab.workloads.processes`): every exec of the workload's children
(``-P PID``; failed ones too with ``-x``) and every open of the workload (``-p PID -F``;
only failed ones with ``-x``)."""

from __future__ import annotations

import errno
import os

from ..workloads import processes
from .scenario import Expectation
from .workcase import Setting, WorkloadCase, WorkloadScenario


def _flags(names: tuple[str, ...]) -> list[str]:
    """The access mode, then the other flags in the order of their bits (as opensnoop lists them)."""
    return [names[0], *sorted(names[1:], key=lambda name: getattr(os, name))]


def _execs(setting: Setting, work: processes.Workload, fails: bool = True) -> list[Expectation]:
    out = []
    for e in processes.execs():
        if e.errno and not fails:
            continue
        out.append(Expectation(1, {"ppid": work.pid, "comm": e.comm or setting.comm, "ret": -e.errno,
                                   "path": e.path or e.name, "args": list(e.args)}))
    return out


def _opens(setting: Setting, work: processes.Workload, failed_only: bool = False) -> list[Expectation]:
    out = []
    for o in processes.opens(setting.folder):
        if failed_only and not o.errno:
            continue
        out.append(Expectation(1, {"pid": work.pid, "comm": setting.comm,
                                   "errno": errno.errorcode[o.errno] if o.errno else None,
                                   "flags": _flags(o.flags), "mode": o.mode,
                                   "path": o.full(setting.folder)}))
    return out


def _exec_workload(setting: Setting) -> processes.Workload:
    return processes.Workload("exec", setting.comm, spawn=setting.spawn)


def _open_workload(setting: Setting) -> processes.Workload:
    return processes.Workload("open", setting.comm, setting.folder, spawn=setting.spawn)


CASES = (
    WorkloadCase("execsnoop", (
        WorkloadScenario("execsnoop-execs", "3 execs with spaces, an empty and a 4 KiB argument; "
                         "execveat through a descriptor and under a dirfd; a relative name; uid 65534; "
                         "a missing file (ENOENT, shown with -x); a shell that kills itself",
                         _exec_workload, lambda s, w: ["-x", "-P", str(w.pid), "--hook", "tracepoint"],
                         _execs),
        WorkloadScenario("execsnoop-no-fails", "the same without -x: the missing file is not shown",
                         _exec_workload, lambda s, w: ["-P", str(w.pid), "--hook", "tracepoint"],
                         lambda s, w: _execs(s, w, fails=False)),
    )),
    WorkloadCase("opensnoop", (
        WorkloadScenario("opensnoop-opens", "opens with known flags and modes, a missing file (ENOENT), "
                         "openat2 with RESOLVE_* (one EXDEV), relative names under a dirfd and the working "
                         "directory (-F: absolute), open() itself",
                         _open_workload, lambda s, w: ["-p", str(w.pid), "-F", "--hook", "tracepoint"],
                         _opens),
        WorkloadScenario("opensnoop-failed", "the same with -x: only the two failed opens",
                         _open_workload, lambda s, w: ["-x", "-p", str(w.pid), "-F", "--hook", "tracepoint"],
                         lambda s, w: _opens(s, w, failed_only=True)),
    )),
)
