"""Terminal histograms in the text format of bcc's ``print_log2_hist`` and ``print_linear_hist``.

Buckets come as a list of counts indexed by slot, or a mapping slot -> count (missing slots
count 0). Each function returns the text bcc prints: one ``\\n``-terminated line per row, a
header first, and nothing at all when every count is 0. Rows run from the first slot (1 for
log2, 0 for linear) to the last nonzero one; empty slots before it are kept unless
``strip_leading_zero`` is set, as in bcc. Each bar is ``floor(width * count / max)`` stars,
with bcc's floating-point division, so the fullest row has the whole width.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Union

Buckets = Union[Mapping[int, int], Sequence[int]]

STARS = 40
LOG2_SLOTS = 65  # slots 0..64; bpf_log2l gives 1..64, so slot 0 stays empty

_LOG2_NARROW = ("     %-19s : count     distribution\n", "%10d -> %-10d : %-8d |%-*s|\n", STARS)
_LOG2_WIDE = ("               %-29s : count     distribution\n", "%20d -> %-20d : %-8d |%-*s|\n",
              STARS // 2)
_LINEAR = ("     %-13s : count     distribution\n", "        %-10d : %-8d |%-*s|\n")


def log2_index(value: int) -> int:
    """The slot bcc's ``bpf_log2l`` picks for an unsigned 64-bit value: its bit length, 1 for 0."""
    if not 0 <= value < 1 << 64:
        raise ValueError(f"log2 histograms take unsigned 64-bit values, not {value}")
    return value.bit_length() or 1


def log2_bounds(slot: int) -> tuple[int, int]:
    """The inclusive value range a log2 slot holds, as its row prints it (slot 1 is 0 -> 1)."""
    if not 1 <= slot < LOG2_SLOTS:
        raise ValueError(f"log2 slots are 1..{LOG2_SLOTS - 1}, not {slot}")
    return (0 if slot == 1 else 1 << (slot - 1)), (1 << slot) - 1


def log2_hist(buckets: Buckets, value_name: str = "value", section: str | None = None, *,
              strip_leading_zero: bool = False) -> str:
    """bcc's ``print_log2_hist`` text for counts per ``log2_index`` slot.

    ``section`` (e.g. ``"disk = sda"``) is printed after a blank line before the histogram, as
    bcc prints ``section_header = value`` for each secondary key. Past slot 32 the layout widens
    to 20-digit bounds and a 20-star bar, as bcc's does. A nonzero slot 0, which ``bpf_log2l``
    never produces and bcc would silently leave out, is an error.
    """
    counts = _dense(buckets, LOG2_SLOTS)
    if counts and counts[0]:
        raise ValueError("log2 slot 0 has a count, but bpf_log2l never picks slot 0: "
                         "bucket values with log2_index()")
    last = _last_nonzero(counts)
    out = [] if section is None else [f"\n{section}\n"]
    if last < 1:
        return "".join(out)
    header, body, width = _LOG2_NARROW if last <= 32 else _LOG2_WIDE
    peak = max(counts)
    out.append(header % value_name)
    first = _first_nonzero(counts) if strip_leading_zero else 1
    for slot in range(first, last + 1):
        low, high = log2_bounds(slot)
        count = counts[slot]
        out.append(body % (low, high, count, width, "*" * int(width * count / peak)))
    return "".join(out)


def linear_hist(buckets: Buckets, value_name: str = "value", step: int = 1,
                section: str | None = None, *, strip_leading_zero: bool = False) -> str:
    """bcc's ``print_linear_hist`` text for counts per slot; a row is labelled ``slot * step``.

    ``section`` works as in ``log2_hist``.
    """
    counts = _dense(buckets, 0)
    last = _last_nonzero(counts)
    out = [] if section is None else [f"\n{section}\n"]
    if last < 0:
        return "".join(out)
    header, body = _LINEAR
    peak = max(counts)
    out.append(header % value_name)
    first = _first_nonzero(counts) if strip_leading_zero else 0
    for slot in range(first, last + 1):
        count = counts[slot]
        out.append(body % (slot * step, count, STARS, "*" * int(STARS * count / peak)))
    return "".join(out)


def _dense(buckets: Buckets, limit: int) -> list[int]:
    """Counts as a list indexed by slot; ``limit`` (if nonzero) bounds the slot numbers."""
    if isinstance(buckets, Mapping):
        items = [(operator.index(slot), operator.index(count)) for slot, count in buckets.items()]
        counts = [0] * (max((slot for slot, _ in items), default=-1) + 1)
        for slot, count in items:
            if slot < 0:
                raise ValueError(f"histogram slots are non-negative, not {slot}")
            counts[slot] = count
    else:
        counts = [operator.index(count) for count in buckets]
    if limit and len(counts) > limit and any(counts[limit:]):
        raise ValueError(f"histogram slots stop at {limit - 1}")
    if any(count < 0 for count in counts):
        raise ValueError("histogram counts are non-negative")
    return counts


def _last_nonzero(counts: list[int]) -> int:
    return next((i for i in range(len(counts) - 1, -1, -1) if counts[i]), -1)


def _first_nonzero(counts: list[int]) -> int:
    return next(i for i, count in enumerate(counts) if count)
