"""pybpfasm: a pure-Python eBPF toolkit (assembler, eDSL, loader, tools)."""

__version__ = "0.1.0"
