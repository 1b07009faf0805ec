"""The newc writer, read back by busybox's cpio (an independent reader)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from pybpfasm.lab.vm import hosttools
from pybpfasm.lab.vm.cpio import NewcWriter


@pytest.fixture
def busybox() -> str:
    try:
        return hosttools.busybox()
    except hosttools.HostToolMissing as err:
        pytest.skip(str(err))


def archive() -> bytes:
    out = io.BytesIO()
    writer = NewcWriter(out)
    writer.directory("bin")
    writer.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
    writer.file("odd", b"abcde")  # lengths that need padding
    writer.symlink("bin/sh", "hello")
    writer.char_device("console", 5, 1)
    writer.close()
    return out.getvalue()


def test_busybox_lists_every_entry_with_its_type(busybox: str) -> None:
    listing = subprocess.run(
        [busybox, "cpio", "-t", "-v"], input=archive(), capture_output=True, check=True
    )
    lines = listing.stdout.decode().splitlines()
    kinds = {line.split()[-1] if "->" not in line else line.split()[-3]: line[0] for line in lines}
    assert kinds == {"bin": "d", "bin/hello": "-", "odd": "-", "bin/sh": "l", "console": "c"}


def test_busybox_extracts_the_same_bytes_and_modes(busybox: str, tmp_path: Path) -> None:
    data = archive()
    subprocess.run([busybox, "cpio", "-i", "-d"], input=data, cwd=tmp_path, capture_output=True)
    assert (tmp_path / "bin/hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (tmp_path / "bin/hello").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "odd").read_bytes() == b"abcde"
    assert (tmp_path / "bin/sh").readlink() == Path("hello")


def test_archive_is_aligned_and_ends_with_the_trailer() -> None:
    data = archive()
    assert len(data) % 4 == 0
    assert b"TRAILER!!!\0" in data[-124:]
