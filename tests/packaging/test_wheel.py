"""A wheel built from the checkout, installed in a clean venv with its runtime dependencies
only (cffi, pyroute2), runs the tools; nothing but ``pybpfasm`` lands in site-packages."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.installs


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the checkout (which may be read-only), symlinks kept as links."""
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", ".hypothesis", "__pycache__", "matrix-results"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(out), str(src)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("pybpfasm-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=600)
    return env_dir


def test_the_wheel_holds_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"pybpfasm"}
    assert "pybpfasm/tools/dropmon.py" in names and "pybpfasm/lab/scenarios/drops.toml" in names


def test_runtime_dependencies_are_cffi_and_pyroute2(venv):
    py = str(venv / "bin" / "python")
    out = subprocess.run([py, "-m", "pip", "list", "--format=json"], check=True, capture_output=True,
                         text=True).stdout
    installed = {p["name"].lower() for p in json.loads(out)} - {"pip", "setuptools", "wheel"}
    assert installed == {"pybpfasm", "cffi", "pycparser", "pyroute2"}


@pytest.mark.skipif(os.geteuid() != 0, reason="running dropmon needs root")
def test_the_installed_dropmon_reports_a_drop(venv, tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.Popen([str(venv / "bin" / "pybpfasm"), "dropmon", "--json", "--no-stack",
                             "--dst-port", "9", "--count", "1"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stderr.readline()]
        while lines[-1] and "Ctrl-C to end." not in lines[-1]:  # notes may come first
            lines.append(proc.stderr.readline())
        assert lines[-1], "".join(lines)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"x", ("127.0.0.1", 9))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    event = json.loads(out)
    assert proc.returncode == 0, err
    assert (event["dst"], event["dport"], event["reason"]) == ("127.0.0.1", 9, "NO_SOCKET")
    assert (tmp_path / "pybpfasm" / "programs").is_dir()  # the build went to the cache
