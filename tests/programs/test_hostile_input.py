"""Hostile but fair input to every tool: random option values, and Ctrl-C at any moment.

Every value either parses to one in range or is refused with one line and exit 2; an
interrupt at any point of start-up ends without a traceback.  The hypothesis budget is
small here; ``PYBPFASM_FUZZ_LONG=1`` runs 10,000 values per option.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfasm.cli import _command, _parser
from pybpfasm.tools import TOOLS, unavailable

pytestmark = pytest.mark.unprivileged
LONG = os.environ.get("PYBPFASM_FUZZ_LONG") == "1"
BUDGET = settings(max_examples=10_000 if LONG else 150, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])


def _typed_options(name: str) -> list[argparse.Action]:
    _, runner, _ = _command(name)
    parser = _parser(name, "")
    runner.configure(parser)
    return [a for a in parser._actions if a.type is not None and a.option_strings]


def _parse(name: str, argv: list[str]) -> tuple[int, str]:
    _, runner, _ = _command(name)
    parser = _parser(name, "")
    runner.configure(parser)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
        except SystemExit as exit_:
            return int(exit_.code or 0), err.getvalue()
    return 0, err.getvalue()


numerals = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="0123456789\u0660\u0661\u0665\u0669+-.eExX_ \t\n\x00\xff", max_size=40),
    st.text(max_size=12),
    st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n),
)


@pytest.mark.parametrize("tool", sorted(TOOLS))
@BUDGET
@given(data=st.data())
def test_every_typed_option_accepts_in_range_or_says_one_line(tool, data):
    for action in _typed_options(tool):
        value = data.draw(numerals, label=action.dest)
        code, err = _parse(tool, [action.option_strings[0], value])
        assert code in (0, 2)
        if code:
            assert err.count("\n") == 1 and "Traceback" not in err, err
        else:
            assert err == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a tool needs root")
@pytest.mark.parametrize("tool", [t for t in sorted(TOOLS) if TOOLS[t].kind == "tracer" and unavailable(t) is None])
def test_ctrl_c_at_any_moment_of_start_up(tool):
    """From the moment the tool's own code runs (the interpreter's start-up before it is
    Python's), an interrupt ends the tool quietly, at a random point of its start."""
    runs = 40 if LONG else 6
    rng = random.Random(1234)
    for _ in range(runs):
        proc = subprocess.Popen([sys.executable, "-m", "pybpfasm.cli", tool, "--json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_for_the_loader(proc.pid)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1]
        assert proc.returncode in (0, 128 + signal.SIGINT, -signal.SIGINT), err
        assert "Traceback" not in err, err


def _wait_for_the_loader(pid: int, limit: float = 20.0) -> None:
    """Until cffi's backend is mapped into *pid*: the tool has been imported and is building."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/maps") as f:
                if "_cffi_backend" in f.read():
                    return
        except FileNotFoundError:
            return
        time.sleep(0.005)
