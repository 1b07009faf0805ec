"""``python -m pybpfasm`` and the ``pybpfasm`` command.

Until :func:`pybpfasm.cli.main` runs, Ctrl-C ends the process quietly (the
default action) instead of raising KeyboardInterrupt into an import.
"""

import signal

signal.signal(signal.SIGINT, signal.SIG_DFL)


def run() -> None:
    from .cli import main

    raise SystemExit(main())


if __name__ == "__main__":
    run()
