"""Build a vagrant-libvirt box offline from the lab's debootstrap userland and a Debian kernel.

The box boots its kernel directly (``libvirt.kernel``/``initrd`` set by the box's
own Vagrantfile) from an ext4 disk image made with ``mkfs.ext4 -d``: no
bootloader, no network access.  Usage (root)::

    python3 -m pybpfasm.lab.vagrant.box --kernel 6.1 [--out DIR] [--add]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
from importlib import resources
from pathlib import Path

from ..vm import hosttools, kernels, userland
from ..vm.cpio import NewcWriter
from ..vm.errors import LabError
from ..vm.modules import ModuleTree
from ..vm.paths import cache_root

#: on top of the guests' packages: an init, SSH, sudo and DHCP, as Vagrant expects
BOX_PACKAGES = (
    *userland.PACKAGES,
    "systemd-sysv",
    "udev",
    "openssh-server",
    "sudo",
    "rsync",
    "dbus",
)
#: crc32c_generic: ext4 checksums metadata with crc32c, a soft dependency busybox does not follow
DISK_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic", "ext4")
VAGRANT_KEY = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"
NETWORK = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n"

BOX_VAGRANTFILE = """\
# Embedded in the box: boot the box's own kernel directly.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = File.join(File.dirname(__FILE__), "vmlinuz")
    libvirt.initrd = File.join(File.dirname(__FILE__), "initrd.img")
    libvirt.cmd_line = "console=ttyS0 net.ifnames=1"
    libvirt.disk_bus = "virtio"
  end
end
"""


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise LabError(f"{argv[0]} failed: {(done.stderr or done.stdout).strip()[-400:]}")


def initrd(kernel: kernels.Kernel) -> bytes:
    """busybox + the modules to reach an ext4 root on virtio-blk."""
    raw = io.BytesIO()
    archive = NewcWriter(raw)
    for name in ("bin", "dev", "proc", "sys", "modules", "root"):
        archive.directory(name)
    archive.char_device("dev/console", 5, 1)
    archive.file("bin/busybox", Path(hosttools.busybox()).read_bytes(), 0o755)
    archive.file("init", resources.files(__package__).joinpath("init.sh").read_bytes(), 0o755)
    if kernel.modules is not None:
        tree = ModuleTree(kernel.modules)
        for index, relative in enumerate(tree.load_order(list(DISK_MODULES))):
            archive.file(f"modules/{index:02d}.ko", tree.read(relative))
    archive.close()
    return gzip.compress(raw.getvalue(), mtime=0)


def configure(root: Path, kernel: kernels.Kernel) -> None:
    """Turn a copy of the userland into a Vagrant machine's root file system."""
    assert kernel.modules is not None
    shutil.copytree(kernel.modules, root / "lib/modules" / kernel.release, symlinks=True)
    (root / "etc/hostname").write_text("pybpfasm-local\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 defaults 0 1\n")
    (root / "etc/systemd/network/50-dhcp.network").write_text(NETWORK)
    key = next(Path("/").glob(VAGRANT_KEY.lstrip("/")), None)
    if key is None:
        raise LabError("Vagrant's insecure public key is missing: apt-get install vagrant")
    _run("chroot", str(root), "useradd", "-m", "-s", "/bin/bash", "vagrant")
    ssh = root / "home/vagrant/.ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(key.read_text())
    _run("chroot", str(root), "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh")
    (root / "etc/sudoers.d/vagrant").write_text("vagrant ALL=(ALL) NOPASSWD: ALL\n")
    (root / "etc/sudoers.d/vagrant").chmod(0o440)
    for unit in ("systemd-networkd.service", "ssh.service", "serial-getty@ttyS0.service"):
        _run("chroot", str(root), "systemctl", "enable", unit)


def build(series: str, out: Path) -> Path:
    """Write ``pybpfasm-local-<series>.box`` into *out* and return its path."""
    kernel = kernels.debian(series)
    tree = userland.ensure(packages=BOX_PACKAGES)
    work = cache_root() / "box-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        root = work / "rootfs"
        _run("cp", "-a", str(tree), str(root))
        configure(root, kernel)
        size_mb = int(
            subprocess.run(["du", "-sm", str(root)], capture_output=True, text=True).stdout.split()[
                0
            ]
        )
        virtual_gb = max(4, (size_mb * 2) // 1024 + 1)
        _run(
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "root",
            "-d",
            str(root),
            str(work / "disk.raw"),
            f"{virtual_gb}G",
        )
        _run("qemu-img", "convert", "-O", "qcow2", str(work / "disk.raw"), str(work / "box.img"))
        bzimage = kernel.modules.parents[2] / "boot" / f"vmlinuz-{kernel.release}"
        shutil.copy(bzimage, work / "vmlinuz")
        (work / "initrd.img").write_bytes(initrd(kernel))
        meta = {"provider": "libvirt", "format": "qcow2", "virtual_size": virtual_gb}
        (work / "metadata.json").write_text(json.dumps(meta) + "\n")
        (work / "Vagrantfile").write_text(BOX_VAGRANTFILE)
        out.mkdir(parents=True, exist_ok=True)
        box = out / f"pybpfasm-local-{series}.box"
        with tarfile.open(box, "w:gz", compresslevel=1) as tar:
            for name in ("metadata.json", "Vagrantfile", "box.img", "vmlinuz", "initrd.img"):
                tar.add(work / name, arcname=name)
        return box
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m pybpfasm.lab.vagrant.box", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--kernel", default="6.1", help="Debian kernel series (default 6.1)")
    parser.add_argument(
        "--out", type=Path, default=cache_root() / "boxes", help="where to write the .box"
    )
    parser.add_argument(
        "--add", action="store_true", help="also 'vagrant box add' it as pybpfasm/local"
    )
    args = parser.parse_args(argv)
    try:
        box = build(args.kernel, args.out)
        print(box)
        if args.add:
            _run("vagrant", "box", "add", "--force", "--name", "pybpfasm/local", str(box))
            print("added as pybpfasm/local")
    except LabError as err:
        print(f"pybpfasm.lab.vagrant.box: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
