"""Programs the verifier rejects: the VerifierError names the Python line that emitted the fault.

Each program marks the line of its offending statement with :func:`mark_next_line`
(the line number comes from the interpreter, not from a literal) and uses an
escape hatch to be wrong on purpose: ``non_null()`` without a test, a header
viewed past its bounds check, a stack slot read before any write.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfasm.dsl import Collection, HashMap, u32, u64, xdp
from pybpfasm.prog import VerifierError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")

ETH_HLEN = 14
LINES: dict[str, int] = {}
counts = HashMap(u32, u64, 16, name="counts")


def mark_next_line(name: str) -> None:
    """Remember the line after the caller's as the offending line of program *name*."""
    LINES[name] = inspect.currentframe().f_back.f_lineno + 1


@xdp
def unchecked_map_value(b, ctx):
    value = counts.lookup_ptr(b, 1)
    mark_next_line("unchecked_map_value")
    b.return_(value.non_null().deref())


@xdp
def past_header(b, ctx):
    pkt = ctx.packet()
    with pkt.header("struct ethhdr") as eth:
        mark_next_line("past_header")
        b.return_(eth.view("struct iphdr", ETH_HLEN).protocol)


@xdp
def in_subprogram(b, ctx):
    def peek(b, key):
        value = counts.lookup_ptr(b, key)
        mark_next_line("in_subprogram")
        b.return_(value.non_null().deref())

    pkt = ctx.packet()
    with pkt.header("struct ethhdr") as eth:
        b.return_(b.function(peek)(eth.h_proto))


@xdp
def uninitialised_stack(b, ctx):
    slot = b.stack(u64, "never written")
    mark_next_line("uninitialised_stack")
    b.return_(slot)


IN_PROCESS = {
    unchecked_map_value: "invalid mem access 'map_value_or_null'",
    past_header: "outside of the packet",
    in_subprogram: "invalid mem access 'map_value_or_null'",
}


@pytest.mark.parametrize("pdef", list(IN_PROCESS), ids=lambda p: p.name)
def test_rejection_names_the_line(pdef) -> None:
    with Collection() as coll, pytest.raises(VerifierError) as err:
        coll.load(pdef)
    assert IN_PROCESS[pdef] in err.value.reason
    source = err.value.instruction.source
    assert (source.file, source.line) == (__file__, LINES[pdef.body.__name__])
    assert f"{__file__}:{source.line}" in str(err.value)


def test_uninitialised_stack_read_names_the_line() -> None:
    """Loaders with CAP_PERFMON or CAP_SYS_ADMIN may read uninitialised stack
    (allow_uninit_stack), so the load runs in a child without both."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_PERFMON and CAP_SYS_ADMIN")
    uninitialised_stack.build()  # runs the body here, which records its line
    child = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
             "from test_verifier_lines import uninitialised_stack\n"
             "from pybpfasm.dsl import Collection\n"
             "from pybpfasm.prog import VerifierError\n"
             "try:\n"
             "    with Collection() as coll:\n"
             "        coll.load(uninitialised_stack)\n"
             "except VerifierError as err:\n"
             "    print(err.reason); print(err.instruction.source)\n")
    out = subprocess.run([setpriv, "--bounding-set", "-sys_admin,-perfmon", "--inh-caps=-all",
                          sys.executable, "-c", child], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2])
    reason, source = out.stdout.splitlines()
    assert "invalid read from stack" in reason
    assert source == f"{__file__}:{LINES['uninitialised_stack']}"
