"""eDSL tests load and run real programs: they need root (CAP_BPF) and the bpf() syscall."""

from __future__ import annotations

import os

import pytest

from pybpfasm.sys.errors import has_bpf_capability


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if has_bpf_capability() and os.path.exists("/sys/fs/bpf"):
        return
    skip = pytest.mark.skip(reason="needs CAP_BPF/CAP_SYS_ADMIN and the bpf() syscall (run as root)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here) and "kernel" in item.keywords:
            item.add_marker(skip)
