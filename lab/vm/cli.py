"""``pybpfasm lab vm``: kernels, run, matrix, setup."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from pybpfasm.errors import UsageError

from . import hosttools, kernels, matrix, qemu, userland
from .errors import LabError


def build_parser(prog: str = "pybpfasm lab vm") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="qemu micro-VMs on Debian kernels")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    sub.add_parser("kernels", help="list cached kernels and the Debian series that can be fetched")

    setup = sub.add_parser(
        "setup", help="install host tools (apt), build the userland, fetch kernels"
    )
    setup.add_argument(
        "--kernel", action="append", default=[], metavar="VERSION", help="also fetch this kernel"
    )

    run = sub.add_parser("run", help="boot a kernel and run a command in the guest")
    run.add_argument(
        "--kernel",
        default="6.1",
        help="Debian series or release, or a bzImage/vmlinux path (default 6.1)",
    )
    run.add_argument("--modules", type=Path, help="lib/modules/<release> of a kernel given by path")
    _guest_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS... (run in /project)")

    mat = sub.add_parser("matrix", help="run a command on every configured kernel; write a table")
    mat.add_argument(
        "--kernel", action="append", metavar="VERSION",
        help=f"kernels to use (repeatable; default {' '.join(matrix.DEFAULT_KERNELS)})",
    )  # fmt: skip
    mat.add_argument(
        "--out",
        type=Path,
        default=Path("matrix-results"),
        help="directory for matrix.md and matrix.json",
    )
    _guest_options(mat)
    mat.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    return parser


def _guest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=qemu.DEFAULT_TIMEOUT,
        help="seconds before the guest is killed",
    )
    parser.add_argument("--memory", type=int, default=1024, metavar="MB", help="guest memory")
    parser.add_argument(
        "--cpus", type=int, default=qemu.GuestConfig.cpus, help="guest vCPUs (default %(default)s)"
    )
    parser.add_argument(
        "--tap", action="append", default=[], metavar="TAP=MAC",
        help="give the guest host tap TAP as a virtio-net NIC with address MAC (repeatable)",
    )  # fmt: skip
    parser.add_argument("--netns", metavar="NS", help="the network namespace of the taps")


def _command(args: argparse.Namespace) -> list[str]:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("give the guest command after '--', e.g. -- python3 -c 'print(1)'")
    return command


def _config(args: argparse.Namespace) -> qemu.GuestConfig:
    if args.timeout <= 0 or args.memory < 256 or args.cpus < 1:
        raise UsageError("--timeout must be > 0, --memory >= 256, --cpus >= 1")
    taps = tuple(tuple(t.split("=", 1)) for t in args.tap)
    if any(len(t) != 2 or not all(t) for t in taps):
        raise UsageError("--tap takes TAP=MAC, e.g. --tap tap0=02:00:00:00:00:01")
    modules = (*qemu.DEFAULT_MODULES, "virtio_net") if taps else qemu.DEFAULT_MODULES
    return qemu.GuestConfig(memory_mb=args.memory, cpus=args.cpus, timeout=args.timeout,
                            modules=modules, taps=taps, netns=args.netns)  # type: ignore[arg-type]


def resolve_kernel(spec: str, modules: Path | None) -> kernels.Kernel:
    """A kernel named by version (fetched from Debian) or by path (user-supplied)."""
    path = Path(spec)
    if "/" in spec or path.is_file():
        return kernels.user(path, modules)
    if modules is not None:
        raise UsageError("--modules goes with a kernel given by path")
    return kernels.debian(spec)


def cmd_kernels(_: argparse.Namespace) -> int:
    print("cached:")
    for kernel in kernels.cached():
        boot = "vmlinux (PVH)" if kernel.image.name == "vmlinux" else "bzImage"
        print(f"  {kernel.series:<6} {kernel.release:<28} {boot}")
    try:
        available = kernels.fetchable()
    except LabError as err:
        print(f"fetchable: unknown ({err})")
        return 1
    print("fetchable from Debian:")
    for series, release in available.items():
        print(f"  {series:<6} {release}")
    print("other kernels: --kernel /path/to/vmlinuz --modules /path/to/lib/modules/VER")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    installed = hosttools.install_missing()
    print(f"host packages: {'installed ' + ' '.join(installed) if installed else 'present'}")
    print(f"userland: {userland.ensure()}")
    for version in args.kernel:
        kernel = kernels.debian(version)
        print(f"kernel {version}: {kernel.release} ({kernel.image})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    command = _command(args)
    config = _config(args)
    kernel = resolve_kernel(args.kernel, args.modules)
    result = qemu.run(kernel, command, config, echo=(sys.stdout, sys.stderr))
    return result.exit_code


def cmd_matrix(args: argparse.Namespace) -> int:
    command = _command(args)
    config = _config(args)
    versions = args.kernel or list(matrix.DEFAULT_KERNELS)

    def progress(run: matrix.KernelRun) -> None:
        detail = run.error or f"exit {run.exit_code} in {run.seconds:g} s"
        print(f"{run.kernel:<6} {run.outcome:<7} {detail}", file=sys.stderr)

    runs = matrix.run_matrix(versions, command, config, progress)
    md, js = matrix.write_reports(runs, command, args.out)
    sys.stdout.write(md.read_text())
    print(f"\nwrote {md} and {js}", file=sys.stderr)
    return 0 if all(r.outcome == "passed" for r in runs) else 1


ACTIONS = {"kernels": cmd_kernels, "setup": cmd_setup, "run": cmd_run, "matrix": cmd_matrix}


def main(argv: Sequence[str], prog: str = "pybpfasm lab vm") -> int:
    """Parse *argv* (after ``vm``) and run the action; lab errors propagate as BPFError."""
    args = build_parser(prog).parse_args(list(argv))
    return ACTIONS[args.action](args)
