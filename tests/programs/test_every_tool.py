"""What every registered tool owes its users, checked for each entry of the TOOLS table:
help, the name of the script it replaces, one-line errors for bad shared options, and
nothing left in the kernel after any way it ends."""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys

import pytest

from pybpfasm.tools import TOOLS
from tests.link.kernel_state import settle

NAMES = sorted(TOOLS)
CLI = [sys.executable, "-m", "pybpfasm.cli"]


def _prog_ids() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True)
    return {p["id"] for p in json.loads(out.stdout or "[]")}


def _links_of(progs: set[int]) -> set[int]:
    """Links of these programs (other tests may attach their own meanwhile)."""
    out = subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True, check=True)
    return {link["id"] for link in json.loads(out.stdout or "[]") if link.get("prog_id") in progs}


@pytest.mark.unprivileged
@pytest.mark.parametrize("name", NAMES)
def test_help_and_aliases(name):
    for invoked in (name, *TOOLS[name].aliases):
        proc = subprocess.run([*CLI, invoked, "--help"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "--json" in proc.stdout, proc.stderr


@pytest.mark.unprivileged
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("args", [["--duration", "nan"], ["--log-file", "/"], ["--no-such-flag"]])
def test_bad_shared_options_are_one_line(name, args):
    proc = subprocess.run([*CLI, name, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_nothing_stays_loaded_after_any_exit(tool, name, sig):
    why = _unavailable(name)
    if why is not None:
        pytest.skip(f"{name} cannot run on this kernel ({why}): covered in the VM lab")
    before = _prog_ids()
    mon = tool(name, "--json")
    ours = _prog_ids() - before
    assert ours, f"{name} loaded no program while running"
    assert _links_of(ours), f"{name} attached nothing while running"
    code, _, err = mon.stop(sig)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0), err
    assert "Traceback" not in err
    assert settle(lambda: _prog_ids() & ours, set()) == set()
    assert settle(lambda: _links_of(ours), set()) == set()


def _unavailable(name: str) -> str | None:
    """What the tool says keeps it from running on this kernel (None: it runs here)."""
    return importlib.import_module(f"pybpfasm.tools.{TOOLS[name].module}").tool.unavailable()


@pytest.mark.parametrize("name", NAMES)
def test_a_tool_this_kernel_cannot_run_says_why_in_one_line(name):
    why = _unavailable(name)
    if why is None:
        pytest.skip(f"{name} runs on this kernel")
    proc = subprocess.run([*CLI, name], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"pybpfasm {name}: cannot trace on this kernel: {why}\n"
