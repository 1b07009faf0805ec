"""The lab's initramfs: static busybox, /init, and the modules needed to reach the 9p root."""

from __future__ import annotations

import gzip
import hashlib
import io
from importlib import resources
from pathlib import Path

from .cpio import NewcWriter
from .hosttools import busybox
from .kernels import Kernel
from .locks import exclusive
from .modules import ModuleTree
from .paths import cache_root

#: loaded by /init before it can mount anything (no-ops where built in)
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
DIRECTORIES = ("bin", "dev", "proc", "sys", "modules", "job", "lower")


def init_script() -> bytes:
    return resources.files(__package__).joinpath("init.sh").read_bytes()


def build(kernel: Kernel) -> bytes:
    """A gzip-compressed newc archive for *kernel*."""
    raw = io.BytesIO()
    archive = NewcWriter(raw)
    for name in DIRECTORIES:
        archive.directory(name)
    archive.char_device("dev/console", 5, 1)
    archive.file("bin/busybox", Path(busybox()).read_bytes(), 0o755)
    archive.file("init", init_script(), 0o755)
    if kernel.modules is not None:
        tree = ModuleTree(kernel.modules)
        for index, relative in enumerate(tree.load_order(list(BOOT_MODULES))):
            archive.file(
                f"modules/{index:02d}-{relative.rsplit('/', 1)[-1].split('.ko')[0]}.ko",
                tree.read(relative),
            )
    archive.close()
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def ensure(kernel: Kernel) -> Path:
    """The cached initramfs for *kernel*, rebuilt whenever its inputs change."""
    key = hashlib.sha256()
    for part in (kernel.release, str(kernel.modules), busybox()):
        key.update(part.encode() + b"\0")
    key.update(init_script())
    path = cache_root() / "initramfs" / f"{kernel.release}-{key.hexdigest()[:12]}.cpio.gz"
    if path.exists():
        return path
    with exclusive(path.parent / ".lock"):
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(build(kernel))
            tmp.rename(path)
    return path
