"""C spelling of BTF types (``struct net_device *``, ``char name[16]``, ``int (*)(void *)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import BTFError
from .limits import MAX_DECLARATION, MAX_DECLARATOR_DEPTH
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


class Spelling:
    """C declarations of one BTF's types, with each prototype's parameter list spelt once.

    Parameter lists are the only part of a declaration that does not depend on
    the declarator, and the only one that can branch: memoising them makes a
    graph of prototypes that share prototypes cost its size, not the number of
    paths through it. A declaration longer than :data:`MAX_DECLARATION`
    characters, nested deeper than :data:`MAX_DECLARATOR_DEPTH` or looping is
    a BTFError (memoised as such for the parameter list it was found in).
    """

    def __init__(self, btf: BTF) -> None:
        self.btf = btf
        self._params: dict[int, str] = {}
        #: prototype id -> why its parameter list cannot be spelt
        self._refused: dict[int, str] = {}

    def declaration(self, type_id: int, declarator: str = "") -> str:
        """C declaration of ``declarator`` (may be empty) with type ``type_id``."""
        text = self._spell(type_id, declarator, frozenset())
        if len(text) > MAX_DECLARATION:
            raise self._too_long(type_id)
        return text

    def _too_long(self, type_id: int) -> BTFError:
        return BTFError(f"{self.btf.source}: the C declaration of type id {type_id} is longer "
                        f"than {MAX_DECLARATION} characters")

    def _spell(self, type_id: int, declarator: str, seen: frozenset) -> str:
        """``seen`` holds the ids already on this chain: C types only loop through a
        struct's name, so meeting one again means the BTF is corrupt."""
        btf = self.btf
        if type_id in seen or len(seen) >= MAX_DECLARATOR_DEPTH:
            what = "refers to itself" if type_id in seen else f"nests more than {MAX_DECLARATOR_DEPTH} deep"
            raise BTFError(f"{btf.source}: type id {type_id} {what}")
        if len(declarator) > MAX_DECLARATION:
            raise self._too_long(type_id)
        inner = seen | {type_id}
        t = btf.type(type_id)
        if isinstance(t, Void):
            return _attach("void", declarator)
        if isinstance(t, (Struct, Union, Enum, Enum64, Fwd)):
            return _attach(_tag(t), declarator)
        if isinstance(t, Ptr):
            return self._spell(t.type_id, "*" + declarator, inner)
        if isinstance(t, tuple(_QUALIFIER_WORDS)):
            word = _QUALIFIER_WORDS[type(t)]
            if isinstance(btf.type(t.type_id), Ptr):  # type: ignore[union-attr]
                return self._spell(t.type_id, f"{word} {declarator}".strip(), inner)  # type: ignore[union-attr]
            return word + " " + self._spell(t.type_id, declarator, inner)  # type: ignore[union-attr]
        if isinstance(t, TypeTag):
            return self._spell(t.type_id, declarator, inner)
        if isinstance(t, Array):
            return self._spell(t.type_id, f"{_grouped(declarator)}[{t.nelems}]", inner)
        if isinstance(t, FuncProto):
            params = self._param_list(type_id, t, inner)
            return self._spell(t.return_type_id, f"{_grouped(declarator)}({params})", inner)
        if isinstance(t, (Func, Var)):
            return self._spell(t.type_id, declarator or t.name, inner)
        if isinstance(t, (Datasec, DeclTag)):
            return t.name
        return _attach(t.name, declarator)  # int, float, typedef

    def _param_list(self, type_id: int, proto: FuncProto, seen: frozenset) -> str:
        known = self._params.get(type_id)
        if known is None:
            if type_id in self._refused:
                raise BTFError(self._refused[type_id])
            try:
                known = self._params[type_id] = self._join_params(type_id, proto, seen)
            except BTFError as err:
                self._refused[type_id] = str(err)
                raise
        return known

    def _join_params(self, type_id: int, proto: FuncProto, seen: frozenset) -> str:
        parts: list[str] = []
        length = 0
        for p in proto.params:
            parts.append("..." if not p.type_id else self._spell(p.type_id, p.name, seen))
            length += len(parts[-1]) + 2
            if length > MAX_DECLARATION:
                raise self._too_long(type_id)
        return ", ".join(parts) or "void"
