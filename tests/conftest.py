"""Markers for the whole suite, set in one place by what a test needs.

- ``root``: loads BPF programs or builds network namespaces (skipped, with the
  reason, when not run as root; ``pytest -m "not root"`` leaves them out);
- ``netns``: creates network namespaces;
- ``vm``: boots qemu guests;
- ``installs``: builds the package and installs it into a fresh venv.

A test gets ``root`` from its directory (the layers that talk to the kernel)
or from the fixtures it uses; a module of a root directory that needs no
privilege says so with ``pytestmark = pytest.mark.unprivileged``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent
#: directories whose tests talk to the kernel
ROOT_DIRS = {"dsl", "events", "kernel", "lab", "link", "loader", "programs"}
#: fixtures that need root and create namespaces, or boot guests
NETNS_FIXTURES = {"make_netns", "veth", "drops_lab", "tool", "cgroup"}
VM_FIXTURES = {"lab_host", "kernel_61"}


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "oracle: differential tests against the LLVM assembler",
        "kernel: needs kprobes/fentry: runs where the kernel has them (the VM lab)",
        "root: needs root (loads BPF programs or builds namespaces); skipped otherwise",
        "netns: creates network namespaces",
        "vm: boots qemu guests",
        "installs: builds the package and installs it into a fresh venv",
        "unprivileged: in a root directory, but needs no privilege",
    ):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs root (run the suite as root, or select -m 'not root')")
    for item in items:
        parts = Path(str(item.fspath)).relative_to(HERE).parts
        fixtures = set(getattr(item, "fixturenames", ()))
        needs_root = parts[0] in ROOT_DIRS and item.get_closest_marker("unprivileged") is None
        if fixtures & NETNS_FIXTURES:
            item.add_marker(pytest.mark.netns)
            needs_root = True
        if parts[0] == "vm" or fixtures & VM_FIXTURES:
            item.add_marker(pytest.mark.vm)
            needs_root = needs_root or bool(fixtures & VM_FIXTURES)
        if needs_root:
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(skip)
