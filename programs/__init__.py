"""The tools, one module each (BPF side and CLI); shared pieces in :mod:`pybpfasm.tools.common`."""
