"""Shared fixtures: the running kernel's BTF, and bpftool's reading of the same file (the oracle)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from pybpfasm.btf import BTF, KERNEL_BTF


def bpftool_dump(path: str, base: str | None = None) -> list[dict]:
    """``bpftool -j btf dump file PATH format raw`` as a list of type dicts (ids from 1)."""
    if not shutil.which("bpftool"):
        pytest.skip("bpftool is not installed (ci/test installs it with apt)")
    cmd = ["bpftool", "-j", "btf", "dump", "file", path, "format", "raw"]
    if base:
        cmd[2:2] = ["-B", base]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["types"]


@pytest.fixture(scope="session")
def kernel_btf() -> BTF:
    if not os.path.exists(KERNEL_BTF):
        pytest.skip(f"no {KERNEL_BTF}: kernel built without CONFIG_DEBUG_INFO_BTF")
    return BTF.kernel()


@pytest.fixture(scope="session")
def bpftool_types(kernel_btf: BTF) -> dict[int, dict]:
    """bpftool's view of every kernel type, by id (run once per session: it is slow)."""
    return {t["id"]: t for t in bpftool_dump(KERNEL_BTF)}


@pytest.fixture(scope="session")
def bpftool_by_name(bpftool_types: dict[int, dict]) -> dict[tuple[str, str], dict]:
    """(kind, name) -> the first type bpftool lists with that kind and name."""
    index: dict[tuple[str, str], dict] = {}
    for t in bpftool_types.values():
        index.setdefault((t["kind"], t["name"]), t)
    return index


CLANG_SOURCE = """
struct event { unsigned int pid; unsigned int flags:3; char comm[16]; long long delta; };
enum verdict { PASS, DROP = 7 };
struct event ev_global;
int handle(struct event *e, enum verdict v) { return e->pid + e->flags + v; }
"""


@pytest.fixture(scope="module", params=["bpfel", "bpfeb"])
def clang_object(request, tmp_path_factory):
    """A BPF object compiled with -g by the clang in the ziglang wheel (a test extra)."""
    pytest.importorskip("ziglang")
    tmp = tmp_path_factory.mktemp(request.param)
    (tmp / "x.c").write_text(CLANG_SOURCE)
    obj = tmp / "x.o"
    cmd = [sys.executable, "-m", "ziglang", "cc", "-target", f"{request.param}-freestanding",
           "-g", "-O2", "-c", str(tmp / "x.c"), "-o", str(obj)]
    subprocess.run(cmd, check=True, capture_output=True)
    return request.param, str(obj)
