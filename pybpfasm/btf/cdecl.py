"""C spelling of BTF types (``struct net_device *``, ``char name[16]``, ``int (*)(void *)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import BTFError
from .types import (
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Func,
    FuncProto,
    Fwd,
    Ptr,
    Restrict,
    Struct,
    TypeTag,
    Union,
    Var,
    Void,
    Volatile,
)

if TYPE_CHECKING:
    from .reader import BTF

_MAX_DEPTH = 64
_QUALIFIER_WORDS = {Const: "const", Volatile: "volatile", Restrict: "restrict"}


def _tag(t: object) -> str:
    if isinstance(t, (Struct, Fwd)):
        keyword = "union" if isinstance(t, Fwd) and t.is_union else "struct"
    elif isinstance(t, Union):
        keyword = "union"
    else:
        keyword = "enum"
    return f"{keyword} {t.name or '{...}'}"  # type: ignore[attr-defined]


def _attach(base: str, declarator: str) -> str:
    if not declarator:
        return base
    return base + (declarator if declarator[0] == "[" else " " + declarator)


def _grouped(declarator: str) -> str:
    """Parenthesise a pointer declarator before a suffix: ``(*p)[4]``."""
    return f"({declarator})" if declarator.startswith("*") else declarator


def declaration(btf: BTF, type_id: int, declarator: str = "", seen: frozenset = frozenset()) -> str:
    """C declaration of ``declarator`` (may be empty) with type ``type_id``.

    ``seen`` holds the ids already on this chain: C types only loop through a
    struct's name, so meeting one again means the BTF is corrupt.
    """
    if type_id in seen or len(seen) > _MAX_DEPTH:
        raise BTFError(f"{btf.source}: type id {type_id} refers to itself")
    inner = seen | {type_id}
    t = btf.type(type_id)
    if isinstance(t, Void):
        return _attach("void", declarator)
    if isinstance(t, (Struct, Union, Enum, Enum64, Fwd)):
        return _attach(_tag(t), declarator)
    if isinstance(t, Ptr):
        return declaration(btf, t.type_id, "*" + declarator, inner)
    if isinstance(t, tuple(_QUALIFIER_WORDS)):
        word = _QUALIFIER_WORDS[type(t)]
        if isinstance(btf.type(t.type_id), Ptr):  # type: ignore[union-attr]
            return declaration(btf, t.type_id, f"{word} {declarator}".strip(), inner)  # type: ignore[union-attr]
        return word + " " + declaration(btf, t.type_id, declarator, inner)  # type: ignore[union-attr]
    if isinstance(t, TypeTag):
        return declaration(btf, t.type_id, declarator, inner)
    if isinstance(t, Array):
        return declaration(btf, t.type_id, f"{_grouped(declarator)}[{t.nelems}]", inner)
    if isinstance(t, FuncProto):
        params = ", ".join(
            "..." if not p.type_id else declaration(btf, p.type_id, p.name, inner)
            for p in t.params
        )
        return declaration(btf, t.return_type_id, f"{_grouped(declarator)}({params or 'void'})", inner)
    if isinstance(t, (Func, Var)):
        return declaration(btf, t.type_id, declarator or t.name, inner)
    if isinstance(t, (Datasec, DeclTag)):
        return t.name
    return _attach(t.name, declarator)  # int, float, typedef
