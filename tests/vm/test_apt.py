"""Reading the host's apt sources (both formats) for the lab's private apt."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpfasm.lab.vm import apt
from pybpfasm.lab.vm.errors import LabError


def use_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict[str, str]) -> None:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    for name, text in files.items():
        (tmp_path / name if name == "sources.list" else parts / name).write_text(text)
    monkeypatch.setattr(apt, "HOST_SOURCES", (tmp_path / "sources.list", parts))


def test_deb822_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_sources(monkeypatch, tmp_path, {"debian.sources": (
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )})  # fmt: skip
    assert apt.host_archives() == (
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    )


def test_one_line_sources_and_ignored_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_sources(monkeypatch, tmp_path, {
        "sources.list": "# comment\ndeb [arch=amd64] http://m.example/debian bookworm main\n"
                        "deb http://s.example/debian-security bookworm-security main\n",
        "other.list.disabled": "deb http://elsewhere.example/debian bookworm main\n",
    })  # fmt: skip
    assert apt.host_archives() == ("http://m.example/debian", "http://s.example/debian-security")


def test_missing_security_source_is_explained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_sources(
        monkeypatch, tmp_path, {"sources.list": "deb http://m.example/debian bookworm main\n"}
    )
    with pytest.raises(LabError, match="cannot find Debian archive and security sources"):
        apt.host_archives()
