"""The loader, link, event and map layers import neither BTF nor the assembler until used.

A tool started from a cached program loads bytecode and attaches it: it must not
pay for importing pybpfasm.btf (and its frozen type classes), the eDSL or the
text syntax. Each check runs in a fresh interpreter, where sys.modules is clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LAYERS = ["pybpfasm.prog", "pybpfasm.link", "pybpfasm.link.perf_event", "pybpfasm.link.tracepoint",
          "pybpfasm.link.xdp", "pybpfasm.link.tc", "pybpfasm.link.tp_btf", "pybpfasm.link.fentry",
          "pybpfasm.events", "pybpfasm.maps", "pybpfasm.features", "pybpfasm.kernel",
          "pybpfasm.helpers", "pybpfasm.sys"]
HEAVY = ("pybpfasm.btf", "pybpfasm.dsl", "pybpfasm.text", "pybpfasm.asm", "pybpfasm.isa")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.unprivileged
def test_importing_the_layers_imports_no_btf_nor_assembler():
    modules = _imported_after("\n".join(f"import {m}" for m in LAYERS)
                              + "\nfrom pybpfasm.link import attach_tracepoint, PerfEventLink")
    assert set(LAYERS) <= modules
    assert sorted(m for m in modules if m.startswith(HEAVY)) == []


@pytest.mark.unprivileged
def test_the_link_package_imports_a_kind_when_it_is_asked_for():
    modules = _imported_after("from pybpfasm.link import attach_tracepoint")
    assert "pybpfasm.link.tracepoint" in modules
    assert {"pybpfasm.link.xdp", "pybpfasm.link.tc", "pybpfasm.link.cgroup"}.isdisjoint(modules)
    modules = _imported_after("import pybpfasm.link as link; link.attach_xdp")
    assert "pybpfasm.link.xdp" in modules


@pytest.mark.skipif(os.geteuid() != 0, reason="loads and attaches a program: needs root")
def test_loading_bytecode_and_attaching_a_tracepoint_imports_no_btf_nor_assembler():
    code = """
from pybpfasm.prog import ProgramSpec
from pybpfasm.link import attach_tracepoint
from pybpfasm.sys import ProgType
ret0 = bytes.fromhex("b700000000000000" "9500000000000000")
with ProgramSpec(ProgType.TRACEPOINT, ret0, name="lazy").load() as prog:
    with attach_tracepoint(prog, "skb", "kfree_skb"):
        pass
"""
    modules = _imported_after(code)
    assert sorted(m for m in modules if m.startswith(HEAVY)) == []
