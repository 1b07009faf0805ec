"""CLI subcommands, one module each (see pybpfasm.cli)."""
