"""Shared fixtures: the running kernel's BTF, and bpftool's reading of the same file (the oracle)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

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
