"""Boot a kernel in a qemu micro-VM, run one command in its userland, collect the result.

The host and the guest talk through a per-run *job* directory shared over 9p:
the host writes ``command`` (a shell line), ``modules`` and ``guest.sh``; the
guest writes ``stdout``, ``stderr``, files in ``out/`` (``$LAB_OUT``; pytest
leaves ``junit.xml`` there) and finally ``status``.  The console log
goes to ``console.log`` in the same directory and is kept when a run fails.
"""

from __future__ import annotations

import codecs
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Sequence

from . import accel, initramfs, userland
from .errors import GuestTimeout, LabError
from .hosttools import require
from .kernels import Kernel
from .locks import one_of
from .paths import cache_root, project_root

#: at most this many guests run at once on the machine (cross-process)
MAX_GUESTS = 2
DEFAULT_TIMEOUT = 300.0
#: loaded in every guest by kmod (with their soft dependencies)
DEFAULT_MODULES = ("openvswitch", "8021q", "veth", "tun", "vhost_net", "dummy")
CONSOLE_TAIL = 8
#: seconds after the timeout at which coreutils' timeout kills qemu on its own
BACKSTOP_GRACE = 30


@dataclass
class GuestConfig:
    """How a guest is shaped; the defaults suit the tests and tools of this project."""

    memory_mb: int = 1024
    #: 2, not 1: OVS 3.1 on one vCPU sometimes sizes its per-CPU upcall handlers to 0 and
    #: loses every upcall ("Overriding n-handler-threads to 0"), so bridges forward nothing
    cpus: int = 2
    timeout: float = DEFAULT_TIMEOUT
    modules: Sequence[str] = DEFAULT_MODULES
    share_project: bool = True
    workdir: Path | None = None  #: host directory shared read-write at /work in the guest
    packages: tuple[str, ...] = userland.PACKAGES  #: the userland tree the guest runs in
    #: host taps the guest gets as virtio-net NICs (eth0, eth1, ...), each (tap, guest MAC):
    #: qemu's own virtio backend, or vhost-net where the host has /dev/vhost-net
    taps: tuple[tuple[str, str], ...] = ()
    #: the network namespace the taps live in (qemu runs there: it opens a tap by name)
    netns: str | None = None


@dataclass(frozen=True)
class GuestResult:
    kernel: Kernel
    exit_code: int
    stdout: str
    stderr: str
    seconds: float  #: qemu start to power-off
    files: dict[str, bytes] = field(default_factory=dict)  #: what the guest left in /run/lab/out


def run(
    kernel: Kernel,
    argv: Sequence[str],
    config: GuestConfig | None = None,
    echo: tuple[IO[str], IO[str]] | None = None,
) -> GuestResult:
    """Boot *kernel*, run *argv* in the guest (cwd /project) and return its result.

    With *echo*, the guest's stdout and stderr are copied to those streams as they arrive.
    Raises :class:`GuestTimeout` when the guest is still running after ``config.timeout``.
    """
    if not argv:
        raise LabError("no command given to run in the guest")
    config = config or GuestConfig()
    root = userland.ensure(packages=config.packages)
    initrd = initramfs.ensure(kernel)
    jobs = cache_root() / "jobs"
    jobs.mkdir(exist_ok=True)
    job = Path(tempfile.mkdtemp(prefix="job-", dir=jobs))
    (job / "out").mkdir()
    (job / "command").write_text(f"exec {shlex.join(argv)}\n")
    (job / "modules").write_text(" ".join(config.modules) + "\n")
    (job / "guest.sh").write_bytes(resources.files(__package__).joinpath("guest.sh").read_bytes())
    shares = {"job": (job, False), "userland": (root, True)}
    if kernel.modules is not None:
        shares["modules"] = (kernel.modules, True)
    if config.share_project:
        shares["project"] = (project_root(), True)
    if config.workdir is not None:
        shares["work"] = (config.workdir, False)
    command = qemu_argv(kernel, initrd, job / "console.log", shares, config)
    try:
        with one_of(cache_root() / "slots", MAX_GUESTS):
            result = _supervise(kernel, command, job, config.timeout, echo)
    except LabError:
        raise  # the job directory stays for inspection; the message names it
    except BaseException:
        shutil.rmtree(job, ignore_errors=True)
        raise
    shutil.rmtree(job)
    return result


def qemu_argv(
    kernel: Kernel,
    initrd: Path,
    console: Path,
    shares: dict[str, tuple[Path, bool]],
    config: GuestConfig,
) -> list[str]:
    """The qemu command line for one guest."""
    qemu = require("qemu-system-x86_64")
    argv = [
        qemu, "-nodefaults", "-no-reboot", "-display", "none",
        *accel.choose(qemu, kernel.image, initrd),
        "-m", str(config.memory_mb), "-smp", str(config.cpus),
        "-kernel", str(kernel.image), "-initrd", str(initrd),
        "-append", "console=ttyS0 panic=-1 quiet",
        "-serial", f"file:{console}",
    ]  # fmt: skip
    for index, (tag, (path, readonly)) in enumerate(shares.items()):
        escaped = str(path).replace(",", ",,")  # qemu's option syntax doubles commas
        options = f"local,id=fs{index},path={escaped},security_model=none"
        argv += ["-fsdev", options + (",readonly=on" if readonly else "")]
        argv += ["-device", f"virtio-9p-pci,fsdev=fs{index},mount_tag={tag}"]
    vhost = ",vhost=on" if os.path.exists("/dev/vhost-net") else ""
    for index, (tap, mac) in enumerate(config.taps):
        argv += ["-netdev", f"tap,id=nic{index},ifname={tap},script=no,downscript=no{vhost}"]
        argv += ["-device", f"virtio-net-pci,netdev=nic{index},mac={mac}"]
    return argv if config.netns is None else ["ip", "netns", "exec", config.netns, *argv]


def _supervise(
    kernel: Kernel,
    command: list[str],
    job: Path,
    timeout: float,
    echo: tuple[IO[str], IO[str]] | None,
) -> GuestResult:
    start = time.monotonic()
    with open(job / "qemu.log", "wb") as log:
        # coreutils timeout bounds qemu even if this process dies without cleaning up
        backstop = ["timeout", "-s", "KILL", str(int(timeout) + BACKSTOP_GRACE), *command]
        proc = subprocess.Popen(
            backstop, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    streams = (
        _Tail(job / "stdout", echo[0] if echo else None),
        _Tail(job / "stderr", echo[1] if echo else None),
    )
    try:
        while proc.poll() is None:
            if time.monotonic() - start > timeout:
                _kill(proc)
                raise GuestTimeout(
                    f"guest on {kernel.release} did not finish within {timeout:g} s and was killed "
                    f"(console: {_console_tail(job)}; logs kept in {job})"
                )
            for tail in streams:
                tail.pump()
            time.sleep(0.1)
    finally:
        _kill(proc)
    seconds = time.monotonic() - start
    for tail in streams:
        tail.pump()
    status = (job / "status").read_text().strip() if (job / "status").exists() else ""
    if not status.lstrip("-").isdigit():
        qemu_log = (job / "qemu.log").read_text(errors="replace").strip()
        reason = status or (
            f"qemu exited {proc.returncode}: {qemu_log}" if qemu_log else "no exit status"
        )
        if kernel.modules is None:
            reason += "; a kernel without virtio-pci and 9p built in needs --modules"
        raise LabError(
            f"guest on {kernel.release} failed: {reason} (console: {_console_tail(job)}; logs kept in {job})"
        )
    files = {p.name: p.read_bytes() for p in (job / "out").iterdir() if p.is_file()}
    return GuestResult(kernel, int(status), streams[0].text(), streams[1].text(), seconds, files)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _console_tail(job: Path) -> str:
    path = job / "console.log"
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    lines = [line.strip() for line in lines if line.strip()]
    return " | ".join(lines[-CONSOLE_TAIL:]) or "empty"


class _Tail:
    """Follow a file the guest appends to; optionally copy new text to a stream."""

    def __init__(self, path: Path, echo: IO[str] | None) -> None:
        self.path = path
        self.echo = echo
        self._data = bytearray()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def pump(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(len(self._data))
                new = f.read()
        except FileNotFoundError:
            return
        if new:
            self._data += new
            if self.echo is not None:
                self.echo.write(self._decoder.decode(new))
                self.echo.flush()

    def text(self) -> str:
        return self._data.decode(errors="replace")
