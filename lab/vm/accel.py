"""Choose qemu's accelerator: KVM where it really boots a kernel, TCG otherwise.

A /dev/kvm that opens is not enough (a paravirtual KVM may hang or abort on
stock kernels), so the first guest of each host boot is preceded by a probe:
the kernel boots under KVM straight into ``busybox poweroff -f``.  The answer
is cached per host boot id.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .locks import exclusive
from .paths import cache_root

TCG = ["-accel", "tcg,thread=multi", "-cpu", "max"]
KVM = ["-accel", "kvm", "-cpu", "host"]
PROBE_TIMEOUT = 20.0


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def choose(qemu: str, kernel: Path, initrd: Path) -> list[str]:
    """qemu arguments selecting the accelerator (and CPU model) for this host."""
    if os.environ.get("PYBPFASM_VM_ACCEL") == "tcg" or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return TCG
    state = cache_root() / "accel.json"
    with exclusive(state.with_suffix(".lock")):
        known = json.loads(state.read_text()) if state.exists() else {}
        if known.get("boot_id") != _boot_id():
            known = {"boot_id": _boot_id(), "kvm": kvm_boots(qemu, kernel, initrd)}
            state.write_text(json.dumps(known) + "\n")
    return KVM if known["kvm"] else TCG


def kvm_boots(qemu: str, kernel: Path, initrd: Path) -> bool:
    """True when *kernel* boots and powers off under KVM within :data:`PROBE_TIMEOUT`."""
    argv = [
        qemu, "-nodefaults", "-no-reboot", "-display", "none", *KVM, "-m", "256",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "panic=-1 rdinit=/bin/busybox -- poweroff -f",
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0
