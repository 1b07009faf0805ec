"""fentry and fexit programs count exactly the calls the test makes."""

from __future__ import annotations

import pytest

from pybpfasm.link import attach_fentry, fentry_spec
from pybpfasm.sys import SyscallError

from .conftest import call_getpgid, count_this_process

CALLS = 40


@pytest.mark.parametrize("kind", ["fentry", "fexit"])
def test_counts_exactly_the_calls(syscall_function, count, kind):
    spec = fentry_spec(syscall_function, count_this_process(), kind, maps={"count": count},
                       name=f"pbt_{kind}")
    try:
        prog = spec.load()
    except SyscallError as err:  # e.g. EPERM with an empty log: no trampolines here
        pytest.skip(f"{kind}: this kernel refuses tracing programs ({err})")
    with prog:
        with attach_fentry(prog) as link:
            call_getpgid(CALLS)
            assert count[0] == CALLS
        assert link.closed
        call_getpgid(5)
        assert count[0] == CALLS
