"""The built-in helper table (for kernels without BTF) agrees with the running kernel's enum."""

from pathlib import Path

from pybpfasm import helpers
from pybpfasm._helper_names import NAMES
from pybpfasm.btf import BTFError


def test_builtin_ids_match_this_kernel() -> None:
    kernel = helpers.kernel_helper_ids()
    builtin = {name: i for i, name in enumerate(NAMES) if i}
    shared = kernel.keys() & builtin.keys()
    assert len(shared) >= 200
    assert {n: kernel[n] for n in shared} == {n: builtin[n] for n in shared}


def test_generated_table_is_current_for_this_kernel(tmp_path: Path) -> None:
    fresh = tmp_path / "names.py"
    helpers.generate(str(fresh))
    fresh_names = fresh.read_text().split("NAMES = (")[1]
    committed = Path(helpers.GENERATED).read_text().split("NAMES = (")[1]
    # a newer kernel may append helpers; the committed ids must be a prefix of its list
    assert fresh_names.startswith(committed.rstrip(")\n")), "run pybpfasm.helpers.generate()"


def test_names_with_and_without_the_bpf_prefix() -> None:
    assert helpers.helper_id("map_lookup_elem") == helpers.helper_id("bpf_map_lookup_elem") == 1


def test_kernels_without_btf_use_the_builtin_table(monkeypatch) -> None:
    kernel_ids = helpers.kernel_helper_ids()

    def no_btf() -> dict:
        raise BTFError("no kernel BTF")

    monkeypatch.setattr(helpers, "kernel_helper_ids", no_btf)
    helpers.helper_ids.cache_clear()
    try:
        assert helpers.helper_id("ringbuf_output") == NAMES.index("ringbuf_output") == 130
        # cut where this kernel's verifier stops knowing ids: the same set as its BTF
        assert set(helpers.helper_ids()) == set(kernel_ids)
    finally:
        helpers.helper_ids.cache_clear()
