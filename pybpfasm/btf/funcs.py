"""Kernel function signatures from BTF (FUNC -> FUNC_PROTO -> params), for typing
fentry/kprobe arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Tuple

from .errors import BTFError
from .types import Func, FuncProto

if TYPE_CHECKING:
    from .reader import BTF


@dataclass(frozen=True)
class Argument:
    """One parameter: its position, name, type id, C type and size."""

    index: int
    name: str
    type_id: int
    type_name: str
    size: int


@dataclass(frozen=True)
class Signature:
    name: str
    return_type_id: int
    return_type: str
    args: Tuple[Argument, ...]
    #: the C declaration: ``int tcp_v4_rcv(struct sk_buff *skb)``, ``void f(int (*cb)(void *))``
    declaration: str
    variadic: bool = False

    def __str__(self) -> str:
        return self.declaration

    def arg(self, name: str) -> Argument:
        for a in self.args:
            if a.name == name:
                return a
        raise BTFError(f"{self.name} has no parameter {name!r} (it has: {', '.join(a.name for a in self.args)})")


def signature(btf: BTF, func_id: int) -> Signature:
    """The signature of FUNC ``func_id``."""
    func = btf.type(func_id)
    proto = btf.type(func.type_id) if isinstance(func, Func) else None
    if not isinstance(func, Func) or not isinstance(proto, FuncProto):
        raise BTFError(f"{btf.source}: type id {func_id} is not a function with a prototype")
    params = list(proto.params)
    variadic = bool(params) and params[-1].type_id == 0
    if variadic:
        params.pop()
    args = tuple(
        Argument(i, p.name, p.type_id, btf.type_name(p.type_id), btf.sizeof(p.type_id))
        for i, p in enumerate(params)
    )
    return Signature(func.name, proto.return_type_id, btf.type_name(proto.return_type_id), args,
                     btf.type_name(func_id), variadic)
