"""Sorted tables with top-N: order, stability, truncation, text and JSON rows, interval header."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pybpfasm.tools.common.columns import Columns
from pybpfasm.tools.common.table import Table, interval_header

COLUMNS = [("reason", "REASON", 6), ("ifname", "IF", 4), ("count", "COUNT", 5, ">")]
ROWS = [
    {"reason": "NO_SOCKET", "ifname": "eth0", "count": 5},
    {"reason": "TCP_CSUM", "ifname": "lo", "count": 12},
    {"reason": "NOT_SPECIFIED", "ifname": None, "count": 5},
    {"reason": "OTHERHOST", "ifname": "eth1", "count": 1},
]


def test_text_sorted_descending_aligned_to_the_shown_rows() -> None:
    assert Table(COLUMNS, "count").text(ROWS) == (
        "REASON        IF   COUNT\n"
        "TCP_CSUM      lo      12\n"
        "NO_SOCKET     eth0     5\n"
        "NOT_SPECIFIED -        5\n"
        "OTHERHOST     eth1     1\n")


def test_top_n_and_the_more_rows_line() -> None:
    assert Table(COLUMNS, "count", top=2).text(ROWS) == (
        "REASON    IF   COUNT\n"
        "TCP_CSUM  lo      12\n"
        "NO_SOCKET eth0     5\n"
        "... and 2 more rows\n")
    assert Table(COLUMNS, "count", top=3).text(ROWS).endswith("... and 1 more row\n")
    assert "more" not in Table(COLUMNS, "count", top=4).text(ROWS)


def test_empty_table_is_its_header() -> None:
    assert Table(COLUMNS, "count").text([]) == "REASON IF   COUNT\n"
    assert Table(COLUMNS, "count", top=0).text(ROWS) == "REASON IF   COUNT\n... and 4 more rows\n"


def test_ties_keep_input_order_both_ways() -> None:
    for reverse in (True, False):
        names = [row["reason"] for row in Table(COLUMNS, "count", reverse=reverse).select(ROWS)[0]]
        assert names.index("NO_SOCKET") < names.index("NOT_SPECIFIED")


def test_several_keys_and_none_below_every_value() -> None:
    shown, cut = Table(COLUMNS, ["count", "ifname"]).select(ROWS)
    assert [row["reason"] for row in shown] == ["TCP_CSUM", "NO_SOCKET", "NOT_SPECIFIED",
                                                "OTHERHOST"]
    assert cut == 0
    ascending = Table(COLUMNS, "ifname", reverse=False).select(ROWS)[0]
    assert [row["ifname"] for row in ascending] == [None, "eth0", "eth1", "lo"]


def test_sort_key_need_not_be_a_column() -> None:
    rows = [{"reason": "A", "ifname": "x", "count": 1, "bytes": 10},
            {"reason": "B", "ifname": "y", "count": 2, "bytes": 99}]
    assert [r["reason"] for r in Table(COLUMNS, "bytes", reverse=False).select(rows)[0]] == ["A", "B"]


def test_json_rows_hold_the_column_keys_and_raw_values() -> None:
    rows = [dict(row, extra=1) for row in ROWS]
    assert Table(COLUMNS, "count", top=2).json_rows(rows) == [
        {"reason": "TCP_CSUM", "ifname": "lo", "count": 12},
        {"reason": "NO_SOCKET", "ifname": "eth0", "count": 5},
    ]
    assert list(Table(COLUMNS, "count").json_rows(rows)[2]) == ["reason", "ifname", "count"]


def test_accepts_a_columns_object_and_a_generator_of_rows() -> None:
    columns = Columns([("n", "N", 3, ">", "x")])
    table = Table(columns, "n", top=2)
    assert table.columns is columns
    assert table.text({"n": n} for n in (10, 255, 16)) == "  N\n ff\n 10\n... and 1 more row\n"


def test_bad_specs() -> None:
    with pytest.raises(ValueError, match="sort key"):
        Table(COLUMNS, [])
    with pytest.raises(ValueError, match="top"):
        Table(COLUMNS, "count", top=-1)
    with pytest.raises(KeyError):
        Table(COLUMNS, "nope").select(ROWS)


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=5), st.one_of(st.none(), st.integers(0, 3))),
                max_size=40),
       st.one_of(st.none(), st.integers(min_value=0, max_value=45)), st.booleans())
def test_select_is_a_stable_sort_then_a_cut(pairs: list, top: int | None, reverse: bool) -> None:
    rows = [{"reason": str(i), "ifname": b, "count": a} for i, (a, b) in enumerate(pairs)]
    shown, cut = Table(COLUMNS, ["count", "ifname"], reverse=reverse, top=top).select(rows)

    def key(row: dict) -> tuple:
        b = -1 if row["ifname"] is None else row["ifname"]
        return (row["count"], b)

    expected = sorted(rows, key=key, reverse=reverse)
    keep = len(rows) if top is None else min(top, len(rows))
    assert shown == expected[:keep]
    assert cut == len(rows) - keep


def test_interval_header() -> None:
    when = time.mktime((2026, 12, 1, 21, 5, 9, 0, 0, -1))
    assert interval_header(when=when) == "21:05:09"
    assert interval_header("loadavg: 0.10", when=when) == "21:05:09 loadavg: 0.10"
    assert len(interval_header()) == 8
