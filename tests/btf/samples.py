"""A small program BTF that uses every kind, valid for the kernel's BPF_BTF_LOAD."""

from __future__ import annotations

from pybpfasm.btf import (
    Array,
    BTFBuilder,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Linkage,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Volatile,
)

#: (id, type) in the order they are added; ids start at 1
PROGRAM_TYPES: list[Type] = [
    Int("unsigned int", 4, 32),                                              # 1
    Int("int", 4, 32, encoding=IntEncoding.SIGNED),                          # 2
    Int("char", 1, 8, encoding=IntEncoding.CHAR),                            # 3
    Array(3, 1, 16),                                                         # 4 char[16]
    Typedef("u32", 1),                                                       # 5
    Struct("event", 32, (                                                    # 6
        Member("pid", 5, 0), Member("flags", 1, 32, 3), Member("mode", 1, 35, 5),
        Member("comm", 4, 64), Member("", 7, 192),
    )),
    Union("", 8, (Member("addr", 1, 0), Member("raw", 13, 0))),              # 7
    Ptr(6),                                                                  # 8 struct event *
    Const(3),                                                                # 9 const char
    Ptr(9),                                                                  # 10 const char *
    Volatile(1),                                                             # 11
    Restrict(10),                                                            # 12 const char *restrict
    Int("long long unsigned int", 8, 64),                                    # 13
    Enum("verdict", 4, (EnumValue("PASS", 0), EnumValue("DROP", 1), EnumValue("BIG", 0xFFFFFFFF))),  # 14
    Enum64("flags64", 8, (EnumValue("LOW", 1), EnumValue("HIGH", 1 << 63))),  # 15
    Enum("delta", 4, (EnumValue("MINUS", -1), EnumValue("PLUS", 1)), signed=True),  # 16
    Fwd("sock"),                                                             # 17
    Fwd("bpf_sock_ops_kern", is_union=True),                                 # 18
    Float("double", 8),                                                      # 19
    TypeTag("user", 1),                                                      # 20
    Ptr(20),                                                                 # 21 u32 __user *
    FuncProto(2, (Param("ctx", 8), Param("len", 5))),                        # 22
    Func("handle_event", 22, Linkage.GLOBAL),                                # 23
    DeclTag("hot", 23, -1),                                                  # 24
    DeclTag("nonnull", 23, 0),                                               # 25
    Var("counter", 13, Linkage.GLOBAL),                                      # 26
    Var("names", 4, Linkage.STATIC),                                         # 27
    Datasec(".data", 24, (VarSecinfo(26, 0, 8), VarSecinfo(27, 8, 16))),     # 28
    Ptr(17),                                                                 # 29 struct sock *
    Ptr(21),                                                                 # 30 (pointer to a tagged pointer)
    Volatile(11),                                                            # 31
]


def program_builder() -> BTFBuilder:
    builder = BTFBuilder()
    for t in PROGRAM_TYPES:
        builder.add(t)
    return builder
