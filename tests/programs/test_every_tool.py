"""What every registered tool owes its users, checked for each entry of the TOOLS table:
help, the name of the script it replaces, one-line errors for bad shared options, and
nothing left in the kernel after any way it ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pybpfasm.tools import TOOLS
from pybpfasm.tools import unavailable as _unavailable
from tests.link.kernel_state import settle

NAMES = sorted(TOOLS)
CLI = [sys.executable, "-m", "pybpfasm.cli"]


def _progs() -> list[dict]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


def _prog_ids() -> set[int]:
    return {p["id"] for p in _progs()}


def _progs_named(names: set[str]) -> set[int]:
    """Programs of these names (no other test loads a command tool's programs)."""
    return {p["id"] for p in _progs() if p.get("name") in names}


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


TRACER_BAD = [["--duration", "nan"], ["--log-file", "/"], ["--no-such-flag"]]
#: a command tool's shared options are its subcommands' (--netns, --json)
COMMAND_BAD = [["--no-such-flag"], ["no-such-command"], ["detach", "--netns", ""],
               ["detach", "--json", "--no-such-flag"]]
BAD = [(name, args) for name in NAMES
       for args in (COMMAND_BAD if TOOLS[name].kind == "command" else TRACER_BAD)]


@pytest.mark.unprivileged
@pytest.mark.parametrize(("name", "args"), BAD)
def test_bad_shared_options_are_one_line(name, args):
    proc = subprocess.run([*CLI, name, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_nothing_stays_loaded_after_any_exit(tool, name, sig):
    if TOOLS[name].kind == "command":
        pytest.skip(f"{name} is a command that exits at once: see test_a_command_leaves_nothing")
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


@pytest.mark.parametrize("name", NAMES)
def test_a_tool_this_kernel_cannot_run_says_why_in_one_line(name):
    why = _unavailable(name)
    if why is None:
        pytest.skip(f"{name} runs on this kernel")
    proc = subprocess.run([*CLI, name], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"pybpfasm {name}: cannot trace on this kernel: {why}\n"


COMMANDS = [name for name in NAMES if TOOLS[name].kind == "command"]
PINS = "/sys/fs/bpf/pybpfasm"


def _pins(name: str) -> list[str]:
    """Everything the command has pinned, in every namespace (staging directories too)."""
    return sorted(os.path.relpath(os.path.join(d, f), PINS)
                  for d, _, files in os.walk(f"{PINS}/{name}") for f in files)


def _command(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, name, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_leaves_nothing(make_netns, name):
    """Command tools (``attach DEV``, ``detach``): attached, the device runs their program
    through a pinned link; after ``detach`` no program, link or pin is left.  An ``attach``
    killed at any moment leaves the device attached with every pin in place or nothing at
    all, and the next ``detach`` (or ``attach``) removes what it left."""
    ns = make_netns()
    subprocess.run(["ip", "-n", ns.name, "link", "add", "pxe0", "type", "veth", "peer", "name", "pxe1"],
                   check=True)
    assert _pins(name) == []
    before = _prog_ids()
    done = _command(name, "attach", "pxe0", "--netns", ns.name)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    ours = _prog_ids() - before
    assert ours and _links_of(ours) and _pins(name), done.stderr
    names = {p["name"] for p in _progs() if p["id"] in ours}
    done = _command(name, "detach", "--netns", ns.name)
    assert done.returncode == 0, done.stderr
    assert settle(lambda: _prog_ids() & ours, set()) == set()
    assert _pins(name) == []
    for delay in (0.1, 0.3, 0.5, 0.7, 0.9, 1.2):
        proc = subprocess.Popen([*CLI, name, "attach", "pxe0", "--netns", ns.name],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        attached = "xdp" in subprocess.run(["ip", "-n", ns.name, "link", "show", "pxe0"],
                                           capture_output=True, text=True).stdout
        made = [p for p in _pins(name) if "/staging-" not in p]
        assert attached == bool(made), (delay, made)
        _command(name, "detach", "--netns", ns.name)
        assert _pins(name) == [], delay
    assert settle(lambda: _progs_named(names), set()) == set()
