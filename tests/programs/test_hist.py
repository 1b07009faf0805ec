"""Histograms: the text of bcc's print_log2_hist / print_linear_hist, and bpf_log2l's slots."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pybpfasm.tools.common import hist

NARROW_HEADER = "     usecs               : count     distribution\n"


def _bpf_log2l(v: int) -> int:
    """bcc's helpers.h bpf_log2l, transcribed step by step (32-bit bpf_log2 on each half)."""
    def log2_32(x: int) -> int:
        r = int(x > 0xFFFF) << 4
        x >>= r
        for bits, limit in ((3, 0xFF), (2, 0xF), (1, 0x3)):
            shift = int(x > limit) << bits
            x >>= shift
            r |= shift
        return r | (x >> 1)
    hi = v >> 32
    return log2_32(hi) + 33 if hi else log2_32(v & 0xFFFFFFFF) + 1


@pytest.mark.parametrize("value", [0, 1, 2, 3, 4, 7, 8, 1023, 1024, 0xFFFFFFFF, 1 << 32,
                                   (1 << 63) - 1, 1 << 63, (1 << 64) - 1])
def test_log2_index_matches_bpf_log2l(value: int) -> None:
    assert hist.log2_index(value) == _bpf_log2l(value)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_log2_index_matches_bpf_log2l_everywhere(value: int) -> None:
    slot = hist.log2_index(value)
    assert slot == _bpf_log2l(value)
    low, high = hist.log2_bounds(slot)
    assert low <= value <= high


@pytest.mark.parametrize("value", [-1, 1 << 64])
def test_log2_index_rejects_non_u64(value: int) -> None:
    with pytest.raises(ValueError):
        hist.log2_index(value)


def test_log2_bounds() -> None:
    assert hist.log2_bounds(1) == (0, 1)
    assert hist.log2_bounds(2) == (2, 3)
    assert hist.log2_bounds(10) == (512, 1023)
    assert hist.log2_bounds(64) == (1 << 63, (1 << 64) - 1)
    for slot in (0, 65):
        with pytest.raises(ValueError):
            hist.log2_bounds(slot)


def test_log2_narrow_layout() -> None:
    text = hist.log2_hist({1: 3, 3: 30, 4: 6}, "usecs")
    assert text == (
        NARROW_HEADER
        + "         0 -> 1          : 3        |****                                    |\n"
        "         2 -> 3          : 0        |                                        |\n"
        "         4 -> 7          : 30       |****************************************|\n"
        "         8 -> 15         : 6        |********                                |\n")


def test_log2_sequence_equals_mapping_and_trims_trailing_empty_slots() -> None:
    counts = [0, 3, 0, 30, 6] + [0] * 60
    assert hist.log2_hist(counts, "usecs") == hist.log2_hist({1: 3, 3: 30, 4: 6, 9: 0}, "usecs")


def test_log2_leading_empty_slots_kept_unless_stripped() -> None:
    kept = hist.log2_hist({3: 1, 5: 2}, "usecs")
    assert kept.splitlines()[1:] == [
        "         0 -> 1          : 0        |                                        |",
        "         2 -> 3          : 0        |                                        |",
        "         4 -> 7          : 1        |********************                    |",
        "         8 -> 15         : 0        |                                        |",
        "        16 -> 31         : 2        |****************************************|",
    ]
    stripped = hist.log2_hist({3: 1, 5: 2}, "usecs", strip_leading_zero=True)
    assert stripped == NARROW_HEADER + "".join(line + "\n" for line in kept.splitlines()[3:])


def test_log2_slot_32_is_still_narrow() -> None:
    text = hist.log2_hist({32: 7}, "nsecs")
    assert text.splitlines()[0] == "     nsecs               : count     distribution"
    assert text.splitlines()[-1] == (
        "2147483648 -> 4294967295 : 7        |****************************************|")
    assert len(text.splitlines()) == 33


def test_log2_wide_layout_past_slot_32() -> None:
    lines = hist.log2_hist({1: 1, 33: 1, 64: 2}, "nsecs").splitlines()
    assert lines[0] == "               nsecs                         : count     distribution"
    assert lines[1] == "                   0 -> 1                    : 1        |**********          |"
    assert lines[2] == "                   2 -> 3                    : 0        |                    |"
    assert lines[33] == "          4294967296 -> 8589934591           : 1        |**********          |"
    assert lines[63] == " 4611686018427387904 -> 9223372036854775807  : 0        |                    |"
    assert lines[64] == " 9223372036854775808 -> 18446744073709551615 : 2        |********************|"
    assert len(lines) == 65


def test_log2_slot_63() -> None:
    lines = hist.log2_hist({63: 5}, "bytes", strip_leading_zero=True).splitlines()
    assert lines == [
        "               bytes                         : count     distribution",
        " 4611686018427387904 -> 9223372036854775807  : 5        |********************|",
    ]


def test_log2_single_slot() -> None:
    assert hist.log2_hist({1: 1}) == (
        "     value               : count     distribution\n"
        "         0 -> 1          : 1        |****************************************|\n")


def test_log2_empty_prints_nothing() -> None:
    assert hist.log2_hist({}) == ""
    assert hist.log2_hist([]) == ""
    assert hist.log2_hist([0] * 65) == ""


def test_log2_section_line_before_each_histogram() -> None:
    assert hist.log2_hist({}, section="disk = sda") == "\ndisk = sda\n"
    text = hist.log2_hist({1: 1}, "usecs", section="disk = sdb")
    assert text.startswith("\ndisk = sdb\n" + NARROW_HEADER)


def test_log2_huge_counts_widen_the_count_column() -> None:
    big = 123456789012
    line = hist.log2_hist({1: big, 2: 1}).splitlines()[1]
    assert line == "         0 -> 1          : 123456789012 |****************************************|"


def test_stars_use_bccs_float_division() -> None:
    # 40 * (M - 1) / M rounds to 40.0 in floating point, so bcc draws a full bar; so do we.
    peak = 10 ** 20
    lines = hist.log2_hist({1: peak - 1, 2: peak}).splitlines()
    assert lines[1].count("*") == 40
    # and 40 * 1 / 41 < 1: no star at all for a small but nonzero count.
    assert hist.log2_hist({1: 1, 2: 41}).splitlines()[1].count("*") == 0


def test_log2_rejects_bad_buckets() -> None:
    with pytest.raises(ValueError, match="slot 0"):
        hist.log2_hist({0: 1, 1: 1})
    with pytest.raises(ValueError, match="stop at 64"):
        hist.log2_hist({65: 1})
    with pytest.raises(ValueError, match="non-negative"):
        hist.log2_hist({-1: 1})
    with pytest.raises(ValueError, match="non-negative"):
        hist.log2_hist({1: -1})
    with pytest.raises(TypeError):
        hist.log2_hist({1: 1.5})


ROW = re.compile(r" *(\d+) -> (\d+) +: (\d+) +\|(\**) *\|$")


@given(st.dictionaries(st.integers(min_value=1, max_value=64),
                       st.integers(min_value=0, max_value=(1 << 64) - 1), max_size=64))
def test_log2_properties(buckets: dict[int, int]) -> None:
    text = hist.log2_hist(buckets, "usecs")
    nonzero = {slot: count for slot, count in buckets.items() if count}
    if not nonzero:
        assert text == ""
        return
    lines = text.splitlines()
    width = 40 if max(nonzero) <= 32 else 20
    assert len(lines) == max(nonzero) + 1
    rows = {}
    for line in lines[1:]:
        match = ROW.match(line)
        assert match, line
        low, high, count, stars = int(match[1]), int(match[2]), int(match[3]), match[4]
        bar = line.index("|")
        assert bar == (36 if width == 40 else 56) + max(0, len(match[3]) - 8)
        assert len(line) == bar + width + 2
        slot = hist.log2_index(high)
        assert slot not in rows and hist.log2_bounds(slot) == (low, high)
        rows[slot] = (count, len(stars))
    assert {slot: count for slot, (count, _) in rows.items() if count} == nonzero
    by_count = sorted(rows.values())
    assert all(a[1] <= b[1] for a, b in zip(by_count, by_count[1:]))
    assert by_count[-1][1] == width


def test_linear_layout_and_step() -> None:
    assert hist.linear_hist([0, 2, 5, 1], "kbytes", step=10) == (
        "     kbytes        : count     distribution\n"
        "        0          : 0        |                                        |\n"
        "        10         : 2        |****************                        |\n"
        "        20         : 5        |****************************************|\n"
        "        30         : 1        |********                                |\n")


def test_linear_mapping_strip_and_section() -> None:
    text = hist.linear_hist({3: 4, 5: 1, 7: 0}, "queue", section="cpu = 0",
                            strip_leading_zero=True)
    assert text == (
        "\ncpu = 0\n"
        "     queue         : count     distribution\n"
        "        3          : 4        |****************************************|\n"
        "        4          : 0        |                                        |\n"
        "        5          : 1        |**********                              |\n")


def test_linear_slot_zero_alone_and_empty() -> None:
    assert hist.linear_hist({0: 9}) == (
        "     value         : count     distribution\n"
        "        0          : 9        |****************************************|\n")
    assert hist.linear_hist({}) == ""
    assert hist.linear_hist([0, 0]) == ""


@given(st.lists(st.integers(min_value=0, max_value=1 << 40), max_size=200))
def test_linear_properties(counts: list[int]) -> None:
    lines = hist.linear_hist(counts).splitlines()
    if not any(counts):
        assert lines == []
        return
    last = max(i for i, c in enumerate(counts) if c)
    assert len(lines) == last + 2
    stars = [line.count("*") for line in lines[1:]]
    pairs = sorted(zip(counts, stars))
    assert all(a[1] <= b[1] for a, b in zip(pairs, pairs[1:]))
    assert max(stars) == 40
    assert [int(line.split(":")[0]) for line in lines[1:]] == list(range(last + 1))
