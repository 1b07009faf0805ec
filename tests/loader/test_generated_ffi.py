"""The generated cffi module is the parsed form of the one cdef in pybpfasm/sys/abi.py."""

from pathlib import Path

from pybpfasm.sys import abi


def test_generated_module_matches_the_cdef(tmp_path: Path) -> None:
    fresh = tmp_path / "_ffi.py"
    abi.generate(str(fresh))
    assert fresh.read_text() == Path(abi.GENERATED).read_text(), (
        "pybpfasm/sys/_ffi.py is stale: run "
        "python -c 'from pybpfasm.sys.abi import generate; generate()'")
