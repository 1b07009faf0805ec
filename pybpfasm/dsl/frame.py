"""The BPF stack frame: 512 bytes below r10, handed out in aligned slots."""

from __future__ import annotations

from .errors import DSLError

#: MAX_BPF_STACK
STACK_SIZE = 512


class StackOverflow(DSLError):
    """The program needs more than the 512 bytes of stack BPF gives it."""


class Frame:
    """Allocates stack slots; offsets are negative, relative to r10."""

    def __init__(self) -> None:
        self.used = 0

    def alloc(self, size: int, align: int = 8, what: str = "a value") -> int:
        """Reserve *size* bytes; returns the offset of the slot from r10."""
        end = (self.used + size + align - 1) // align * align
        if end > STACK_SIZE:
            raise StackOverflow(f"no stack left for {what} ({size} bytes): "
                                f"{self.used} of {STACK_SIZE} bytes already in use")
        self.used = end
        return -end
