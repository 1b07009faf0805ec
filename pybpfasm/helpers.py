"""BPF helper ids by name, from the running kernel's ``enum bpf_func_id`` in BTF."""

from __future__ import annotations

import functools

from .btf import BTF, BTFError
from .errors import UsageError


@functools.cache
def helper_ids() -> dict[str, int]:
    """``{"map_lookup_elem": 1, ...}``: every helper this kernel knows, without ``BPF_FUNC_``."""
    enum = BTF.kernel().enum("bpf_func_id")
    return {name[len("BPF_FUNC_"):]: value for name, value in enum.items()
            if name.startswith("BPF_FUNC_") and name != "BPF_FUNC_unspec"}


def helper_id(name: str) -> int:
    """The id of helper ``name`` (``"ringbuf_output"`` or ``"bpf_ringbuf_output"``)."""
    short = name[len("bpf_"):] if name.startswith("bpf_") else name
    try:
        ids = helper_ids()
    except BTFError as err:
        raise UsageError(f"cannot look up helper {name!r}: {err}") from None
    try:
        return ids[short]
    except KeyError:
        raise UsageError(f"this kernel has no BPF helper {name!r}") from None
