"""Without privileges, pybpfasm says so in one sentence and exits 1: no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           "--inh-caps=-all", "--bounding-set=-all"]


def test_unprivileged_features_is_one_sentence() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to drop privileges in a child")
    command = [*SETPRIV, sys.executable, "-c", "import sys; from pybpfasm.cli import main; sys.exit(main())",
               "features"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    child = subprocess.run(command, capture_output=True, text=True, env=env,
                           cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert child.returncode == 1, child.stderr
    assert child.stdout == ""
    lines = child.stderr.splitlines()
    assert len(lines) == 1, child.stderr
    assert lines[0].startswith("pybpfasm features: ")
    assert "Operation not permitted: run as root or with CAP_BPF" in lines[0]
    assert "Traceback" not in child.stderr


def _unprivileged_python(code: str, **env_vars: str) -> subprocess.CompletedProcess:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to drop privileges in a child")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env_vars}
    return subprocess.run([*SETPRIV, sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def test_unprivileged_tracefs_that_is_mounted_is_called_unreadable_not_missing() -> None:
    from pybpfasm.kernel import tracefs_mounts, tracefs_root

    root = tracefs_root()  # as root: found (or mounted)
    assert root in tracefs_mounts()
    if os.stat(root).st_mode & 0o005:
        pytest.skip(f"{root} is readable by everyone here")
    child = _unprivileged_python(
        "from pybpfasm.kernel import KernelError, tracefs_root\n"
        "try:\n    tracefs_root()\nexcept KernelError as err:\n    print(err)\n")
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == (f"tracefs is mounted on {root} but this user (uid 65534) "
                                    "may not read it: run as root")


def test_unprivileged_tracepoint_ids_say_why_tracefs_is_closed() -> None:
    child = _unprivileged_python(
        "from pybpfasm.errors import BPFError\nfrom pybpfasm.kernel import tracepoint_id\n"
        "try:\n    tracepoint_id('skb', 'kfree_skb')\nexcept BPFError as err:\n    print(err)\n")
    assert child.returncode == 0, child.stderr
    assert "may not read it: run as root" in child.stdout
    assert "mount" not in child.stdout.replace("is mounted on", "")


def test_tracefs_mounts_reads_mountinfo(tmp_path) -> None:
    from pybpfasm.kernel import tracefs_mounts

    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
        "35 22 0:12 / /sys/kernel/tracing rw,relatime shared:9 - tracefs tracefs rw\n"
        "36 1 0:12 / /srv/my\\040trace rw - tracefs nodev rw\n"
        "37 1 0:30 / /mnt/tracefs rw - ext4 /dev/vda rw\n")
    assert tracefs_mounts(str(info)) == ["/sys/kernel/tracing", "/srv/my trace"]
    assert tracefs_mounts(str(tmp_path / "missing")) == []


def test_unprivileged_kallsyms_without_addresses_caches_nothing() -> None:
    home = tempfile.mkdtemp(prefix="pbt-cache-")  # a cache base of the unprivileged user's own
    try:
        os.chown(home, 65534, 65534)
        child = _unprivileged_python(
            "from pybpfasm.kernel import Kallsyms, KernelError\n"
            "try:\n    Kallsyms.load()\nexcept KernelError as err:\n    print(err)\n",
            XDG_CACHE_HOME=home)
        assert child.returncode == 0, child.stderr
        assert "shows no addresses" in child.stdout
        assert [name for _, _, files in os.walk(home) for name in files] == []
    finally:
        shutil.rmtree(home)


def test_unprivileged_btf_tracepoint_says_tracefs_is_closed_not_missing() -> None:
    """``pybpfasm btf tracepoint`` as a user tracefs is closed to (issue 12 item 8)."""
    from pybpfasm.kernel import tracefs_root

    root = tracefs_root()
    if os.stat(root).st_mode & 0o005:
        pytest.skip(f"{root} is readable by everyone here")
    child = _unprivileged_python(
        "import sys; from pybpfasm.cli import main; sys.exit(main(['btf', 'tracepoint', 'skb:kfree_skb']))")
    assert child.returncode != 0 and child.stderr.count("\n") == 1, child.stderr
    assert "may not read it: run as root" in child.stderr and "not mounted" not in child.stderr
