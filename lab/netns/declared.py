"""Checked reads of TOML tables: wrong types and unknown keys become one-line errors."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from .errors import DeclarationError

_MISSING = object()
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _shown(value: Any) -> str:
    """``repr(value)``, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _key(key: str) -> str:
    """``key`` as a TOML path element in a message: bare if it can be, else quoted (one line)."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


class Table:
    """A TOML table read key by key; ``done()`` rejects the keys nobody read."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise DeclarationError(f"{where}: expected a table, got {type(data).__name__}")
        self.data = data
        self.where = where
        self._read: set[str] = set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        """The value of ``key`` checked against ``kind``; ``default`` when absent (else an error)."""
        self._read.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise DeclarationError(f"{self.where}: missing {key!r}")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise DeclarationError(f"{self.where}: {key!r} must be {names}, got {_shown(value)}")
        return value

    def strings(self, key: str) -> list[str]:
        """A list of strings (empty when absent)."""
        values = self.get(key, list, [])
        if not all(isinstance(v, str) for v in values):
            raise DeclarationError(f"{self.where}: {key!r} must be a list of strings")
        return list(values)

    def table(self, key: str) -> Table:
        """A nested table (empty when absent)."""
        return Table(self.get(key, dict, {}), f"{self.where}.{_key(key)}")

    def tables(self, key: str) -> list[Table]:
        """An array of tables (empty when absent)."""
        return [Table(item, f"{self.where}.{_key(key)}[{i}]") for i, item in enumerate(self.get(key, list, []))]

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._read)
        if unknown:
            raise DeclarationError(f"{self.where}: unknown key {unknown[0]!r}")
