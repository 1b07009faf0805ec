"""Module load order from modules.dep / modules.builtin, on a tree written here."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from pybpfasm.lab.vm.errors import LabError
from pybpfasm.lab.vm.modules import ModuleTree, module_name


@pytest.fixture
def tree(tmp_path: Path) -> ModuleTree:
    (tmp_path / "modules.dep").write_text(
        "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n"
        "kernel/net/9p/9pnet.ko.xz:\n"
        "kernel/fs/netfs/netfs.ko.xz:\n"
        "kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n"
        "kernel/net/openvswitch/openvswitch.ko.xz: kernel/net/nsh/nsh.ko.xz\n"
    )
    (tmp_path / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    for relative in ("kernel/fs/9p/9p.ko.xz", "kernel/drivers/virtio/virtio_ring.ko"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "kernel/fs/9p/9p.ko.xz").write_bytes(lzma.compress(b"\x7fELF9p"))
    (tmp_path / "kernel/drivers/virtio/virtio_ring.ko").write_bytes(b"\x7fELFring")
    return ModuleTree(tmp_path)


def test_dependencies_come_first_once_and_builtins_are_skipped(tree: ModuleTree) -> None:
    assert tree.load_order(["virtio_pci", "9pnet_virtio", "9p"]) == [
        "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/net/9p/9pnet.ko.xz",
        "kernel/net/9p/9pnet_virtio.ko.xz",
        "kernel/fs/netfs/netfs.ko.xz",
        "kernel/fs/9p/9p.ko.xz",
    ]


def test_unknown_module_is_named(tree: ModuleTree) -> None:
    with pytest.raises(LabError, match="module nope is neither built in nor in"):
        tree.load_order(["nope"])


def test_compressed_modules_are_read_as_plain_elf(tree: ModuleTree) -> None:
    assert tree.read("kernel/fs/9p/9p.ko.xz") == b"\x7fELF9p"
    assert tree.read("kernel/drivers/virtio/virtio_ring.ko") == b"\x7fELFring"


def test_module_names_fold_dashes_and_suffixes() -> None:
    assert module_name("kernel/x/crc32c-generic.ko.zst") == "crc32c_generic"
