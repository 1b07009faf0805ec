"""User-space side of strings sent in chunks (see :mod:`.process`): joining and decoding."""

from __future__ import annotations


def decode(raw: bytes) -> str:
    """Bytes from the kernel as text; bytes that are not UTF-8 show as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


class Chunks:
    """Strings numbered by index, each sent as one or more chunks of at most *size* bytes
    (``bpf_probe_read_*_str`` results: the length counts the NUL, except for an empty string
    where the kernel answers 0 (6.1 does; 6.18 counts the NUL); a full chunk goes on)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.parts: dict[int, bytearray] = {}

    def add(self, index: int, data: bytes, length: int) -> None:
        """A chunk of string *index*: *length* bytes of *data*, NUL included (< 0: a fault)."""
        if length >= 0:
            self.parts.setdefault(index, bytearray()).extend(data[:max(length - 1, 0)])

    def strings(self) -> list[str]:
        """The strings in index order (a string that faulted before any byte is left out)."""
        return [decode(bytes(self.parts[i])) for i in sorted(self.parts)]
