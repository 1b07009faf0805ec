"""Build errors of the eDSL: one line that starts with the user's file:line.

The location is taken when an error is made: the innermost stack frame
outside the library, which is the line of the user's program body that
called into the eDSL.  Tools shipped inside the package
(``pybpfasm/tools``, ``pybpfasm/lab``) count as user code.

"did you mean" suggestions (difflib) are computed only when a message is
formatted, so errors that are caught and never shown cost nothing.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
from typing import Callable, Iterable, Sequence, Union

from ..errors import BPFError
from ..isa import SourceLocation

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_USER_PACKAGES = tuple(os.path.join(_PACKAGE, sub) + os.sep for sub in ("tools", "lab"))

Message = Union[str, Callable[[], str]]


@functools.lru_cache(maxsize=None)
def _internal(filename: str) -> bool:
    """Whether *filename* is library code (skipped when looking for the user's line)."""
    path = os.path.abspath(filename)
    if path == os.path.abspath(contextlib.__file__):
        return True
    return path.startswith(_PACKAGE + os.sep) and not path.startswith(_USER_PACKAGES)


def user_location() -> SourceLocation | None:
    """The file:line of the innermost caller outside the library."""
    frame = sys._getframe(1)
    while frame is not None:
        if not _internal(frame.f_code.co_filename):
            return SourceLocation(frame.f_code.co_filename, frame.f_lineno)
        frame = frame.f_back
    return None


class _Here:
    """The default of ``at``: the user's line where the error is made."""


HERE = _Here()


class DSLError(BPFError):
    """An eDSL error: ``file:line: message``, the message formatted on demand."""

    def __init__(self, message: Message, *, at: SourceLocation | None | _Here = HERE) -> None:
        super().__init__()
        self.location = user_location() if isinstance(at, _Here) else at
        self._message = message
        self._text: str | None = None

    @property
    def message(self) -> str:
        """The message without its location."""
        if self._text is None:
            self._text = self._message() if callable(self._message) else self._message
        return self._text

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def __reduce__(self):  # pickling keeps the formatted text
        return _rebuild, (type(self), self.message, self.location)


def _rebuild(cls: type[DSLError], message: str, location: SourceLocation | None) -> DSLError:
    return cls(message, at=location)


class BuildError(DSLError):
    """A program that cannot be built."""


class DSLTypeError(DSLError, TypeError):
    """An operation the value's type does not allow."""


class UnknownName(DSLError, AttributeError):
    """A field, method, helper, argument or type name that does not exist here."""


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    import difflib  # only when an error is shown: not at start-up

    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean a or b?"``, or nothing when no candidate is close."""
    close = close_matches(name, candidates)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def listing(what: str, names: Sequence[str], limit: int = 30) -> str:
    """``" (fields: a, b, c)"``; long lists are cut with a count of the rest."""
    if not names:
        return ""
    shown = ", ".join(names[:limit])
    more = f", and {len(names) - limit} more" if len(names) > limit else ""
    return f" ({what}: {shown}{more})"


def public_methods(cls: type) -> list[str]:
    """The methods and properties a user may call on instances of *cls*."""
    names = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if inspect.isfunction(attr) or isinstance(attr, (property, classmethod, staticmethod)):
            names.append(name)
    return names


def unknown_attribute(what: str, name: str, fields: Callable[[], Sequence[str]],
                      methods: Callable[[], Sequence[str]], *, field_word: str = "field",
                      also: Callable[[], Sequence[str]] = tuple, note: str = "") -> UnknownName:
    """The error for ``x.name`` where *what* (``"struct iphdr"``) has neither a
    field nor a method *name*: it says which of the two the name is closest to,
    and lists that kind.  Names from *also* are suggested when close, never listed;
    *note* ends the message."""

    def message() -> str:
        names_f, names_m = list(fields()), list(methods())
        close = close_matches(name, [*names_f, *also(), *names_m])
        if not names_f:
            kind = "method"
        elif close:
            kind = "method" if close[0] in names_m else field_word
        else:
            kind = f"{field_word} or method"
        text = f"{what} has no {kind} {name!r}"
        if close:
            text += f"; did you mean {' or '.join(close)}?"
        if kind != "method":
            text += listing(f"{field_word}s", names_f)
        if kind != field_word:
            text += listing("methods", names_m)
        return f"{text}; {note}" if note else text

    return UnknownName(message)


__all__ = ["BuildError", "DSLError", "DSLTypeError", "UnknownName", "close_matches", "did_you_mean",
           "listing", "public_methods", "unknown_attribute", "user_location"]
