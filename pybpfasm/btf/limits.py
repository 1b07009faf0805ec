"""How far the reader follows a type graph: the kernel's own limits, and ours for spelling.

A type graph past one of these is hostile or corrupt, and gets one
:class:`~pybpfasm.btf.BTFError` instead of unbounded time or memory.
"""

from __future__ import annotations

#: ``MAX_RESOLVE_DEPTH`` (kernel/bpf/btf.c): typedef/qualifier/array chains and
#: anonymous members nested in anonymous members
MAX_RESOLVE_DEPTH = 32
#: ``BTF_MAX_VLEN`` (kernel/bpf/btf.c): members of one struct; also the most a
#: struct may have once its anonymous members are flattened
MAX_MEMBERS = 0xFFFF
#: the longest C declaration spelled (the longest in a 6.18 vmlinux is 465 characters)
MAX_DECLARATION = 2048
#: pointers, arrays and prototypes one declaration may nest
MAX_DECLARATOR_DEPTH = 64
