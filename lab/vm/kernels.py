"""Kernels for guests: Debian packages fetched by version, or images a user brings.

A Debian kernel is fetched with the lab's private apt (:mod:`.apt`), unpacked
with ``dpkg-deb -x``, ``depmod``-ed, and its ELF vmlinux extracted for direct
boot; everything is cached under ``kernels/<release>/`` and reused.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import vmlinux
from .apt import PrivateApt
from .errors import KernelNotFound, LabError
from .hosttools import require
from .locks import exclusive
from .paths import cache_root

#: Debian's unsigned generic amd64 images; group 1 is the ABI, e.g. 6.1.0-56 or 6.12.117+deb12
#: (excludes cloud/rt flavours and the 6.1.0-0.deb11.N backports to bullseye)
DEBIAN_IMAGE = r"linux-image-(\d+\.\d+(?:\.\d+)?(?:-\d+|\+deb\d+))-amd64-unsigned"
META_FILE = "kernel.json"


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel and the modules that belong to it."""

    release: str  #: ``uname -r`` in the guest
    image: Path  #: what qemu's -kernel gets: an ELF vmlinux (PVH) or the bzImage
    modules: Path | None  #: .../lib/modules/<release>, depmod-ed
    origin: str  #: Debian package name, or "user"

    @property
    def series(self) -> str:
        return series_of(self.release)


def series_of(release: str) -> str:
    """``6.1.0-56-amd64`` -> ``6.1``."""
    return ".".join(re.findall(r"\d+", release)[:2])


def _release_key(release: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", release))


def kernels_dir() -> Path:
    return cache_root() / "kernels"


def cached() -> list[Kernel]:
    """Debian kernels already unpacked in the cache, oldest first."""
    found = []
    for meta in kernels_dir().glob(f"*/{META_FILE}"):
        found.append(_load(meta))
    return sorted(found, key=lambda k: _release_key(k.release))


def _load(meta: Path) -> Kernel:
    data = json.loads(meta.read_text())
    base = meta.parent
    return Kernel(data["release"], base / data["image"], base / data["modules"], data["origin"])


def fetchable(apt: PrivateApt | None = None) -> dict[str, str]:
    """Newest Debian kernel release for every series the archive has: series -> release."""
    apt = apt or PrivateApt()
    apt.ensure_lists()
    newest: dict[str, str] = {}
    for name in apt.package_names(DEBIAN_IMAGE):
        release = re.fullmatch(DEBIAN_IMAGE, name).group(1) + "-amd64"
        series = series_of(release)
        if series not in newest or _release_key(release) > _release_key(newest[series]):
            newest[series] = release
    return dict(sorted(newest.items(), key=lambda kv: _release_key(kv[0])))


def debian(version: str, apt: PrivateApt | None = None) -> Kernel:
    """A Debian kernel by series (``6.1``) or full release (``6.1.0-56-amd64``), fetched if needed."""
    exact = version if version.endswith("-amd64") else None
    for kernel in reversed(cached()):
        if kernel.release == exact or (exact is None and kernel.series == version):
            return kernel
    apt = apt or PrivateApt()
    available = fetchable(apt)
    release = exact or available.get(version)
    if release is None or not apt.package_names(re.escape(f"linux-image-{release}-unsigned")):
        raise KernelNotFound(_not_found_message(version, available))
    return _fetch(release, apt)


def _not_found_message(version: str, available: dict[str, str]) -> str:
    have = ", ".join(f"{s} ({r})" for s, r in available.items()) or "none"
    local = ", ".join(k.release for k in cached()) or "none"
    return (
        f"no Debian kernel {version!r}: fetchable {have}; cached {local}; "
        "for other kernels pass --kernel /path/to/vmlinuz --modules /path/to/lib/modules/VER"
    )


def _fetch(release: str, apt: PrivateApt) -> Kernel:
    target = kernels_dir() / release
    with exclusive(kernels_dir() / ".lock"):
        if (target / META_FILE).exists():
            return _load(target / META_FILE)
        package = f"linux-image-{release}-unsigned"
        work = kernels_dir() / f"{release}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        deb = apt.download(package, work / "deb")
        root = work / "root"
        _run(require("dpkg-deb"), "-x", str(deb), str(root))
        shutil.rmtree(work / "deb")
        modules = _modules_dir(root, release)
        _run(require("depmod"), "-b", str(_depmod_base(modules)), release)
        bzimage = root / "boot" / f"vmlinuz-{release}"
        elf = work / "vmlinux"
        image = elf if vmlinux.extract_vmlinux(bzimage, elf) else bzimage
        meta = {
            "release": release,
            "image": str(image.relative_to(work)),
            "modules": str(modules.relative_to(work)),
            "origin": package,
        }
        (work / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        work.rename(target)
        return _load(target / META_FILE)


def _modules_dir(root: Path, release: str) -> Path:
    for prefix in ("lib", "usr/lib"):
        path = root / prefix / "modules" / release
        if path.is_dir():
            return path
    raise LabError(f"the kernel package has no lib/modules/{release}")


def _depmod_base(modules: Path) -> Path:
    """The ``depmod -b`` base for ``BASE/lib/modules/REL`` or ``BASE/usr/lib/modules/REL``."""
    base = modules.parent.parent.parent
    return base.parent if base.name == "usr" else base


def user(image: Path, modules: Path | None = None) -> Kernel:
    """A kernel the user brings: a bzImage or ELF vmlinux, and optionally its modules."""
    if not image.is_file():
        raise KernelNotFound(f"kernel image {image} does not exist")
    data = image.read_bytes()
    if modules is not None:
        if not modules.is_dir():
            raise KernelNotFound(f"modules directory {modules} does not exist")
        if modules.parent.name != "modules" or modules.parent.parent.name != "lib":
            raise LabError(
                f"--modules must be a .../lib/modules/<release> directory, not {modules}"
            )
        if not (modules / "modules.dep").exists():
            _run(require("depmod"), "-b", str(_depmod_base(modules)), modules.name)
    release = modules.name if modules else _user_release(data, image)
    if vmlinux.is_elf(data):
        if not vmlinux.has_pvh_entry(data):
            raise LabError(f"{image} is an ELF kernel without a PVH entry note; pass its bzImage")
        return Kernel(release, image, modules, "user")
    digest = hashlib.sha256(data).hexdigest()[:16]
    elf = cache_root() / "user-kernels" / f"{digest}.vmlinux"
    elf.parent.mkdir(parents=True, exist_ok=True)
    if elf.exists() or vmlinux.extract_vmlinux(image, elf):
        return Kernel(release, elf, modules, "user")
    return Kernel(release, image, modules, "user")


def _user_release(data: bytes, image: Path) -> str:
    if vmlinux.is_elf(data):
        raise LabError(f"cannot tell the release of ELF kernel {image}; pass --modules")
    return vmlinux.bzimage_version(data)


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise LabError(f"{Path(argv[0]).name} failed: {done.stderr.strip()[-300:]}")
