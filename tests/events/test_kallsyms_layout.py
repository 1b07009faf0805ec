"""Kallsyms on layouts other kernels have: x86's per-CPU symbols at address 0 come first."""

from __future__ import annotations

import pytest

from pybpfasm.kernel import Kallsyms, KernelError

pytestmark = pytest.mark.unprivileged

PERCPU_FIRST = """\
0000000000000000 A fixed_percpu_data
0000000000000000 A __per_cpu_start
0000000000001000 A cpu_debug_store
ffffffff81000000 T _text
ffffffff81000100 T startup_64
ffffffff81000200 t secondary_startup_64
ffffffffc0000000 t pbt_mod_func\t[pbt_mod]
"""


def test_per_cpu_symbols_at_zero_are_not_hidden_addresses(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text(PERCPU_FIRST)
    syms = Kallsyms(str(path))
    assert syms.symbolize(0xFFFFFFFF81000104) == "startup_64+0x4"
    assert syms.address("secondary_startup_64") == 0xFFFFFFFF81000200
    assert syms.symbolize(0xFFFFFFFFC0000010).startswith("pbt_mod_func+0x10")


def test_all_zero_addresses_say_what_to_do(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text("".join(f"{0:016x} T f{i}\n" for i in range(5)))
    with pytest.raises(KernelError, match="kptr_restrict"):
        Kallsyms(str(path))
