"""Text columns: header, aligned lines, None as '-', formatters, widths that grow, never cut."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pybpfasm.tools.common.columns import Column, Columns


def drops() -> Columns:
    return Columns([
        ("time", "TIME(s)", 9, "<", ".3f"),
        ("pid", "PID", 7, ">"),
        ("comm", "COMM", 16),
        ("reason", "REASON"),
    ])


def test_header_and_line() -> None:
    cols = drops()
    assert cols.header() == "TIME(s)       PID COMM             REASON"
    assert cols.line({"time": 1.5, "pid": 42, "comm": "curl", "reason": "NO_SOCKET"}) == (
        "1.500          42 curl             NO_SOCKET")


def test_none_prints_dash_without_calling_the_formatter() -> None:
    calls = []

    def fmt(value: object) -> str:
        calls.append(value)
        return f"<{value}>"

    cols = Columns([("a", "A", 3, ">", fmt), ("b", "B", 3)])
    assert cols.line({"a": None, "b": None}) == "  - -"
    assert calls == []
    assert cols.line({"a": 7, "b": "x"}) == "<7> x"
    assert calls == [7]


def test_missing_key_is_an_error() -> None:
    with pytest.raises(KeyError):
        drops().line({"time": 1.0, "pid": 1, "comm": "x"})


def test_long_values_widen_their_line_and_are_never_cut() -> None:
    cols = Columns([("comm", "COMM", 4), ("pid", "PID", 5, ">")])
    assert cols.line({"comm": "systemd-journald", "pid": 1}) == "systemd-journald     1"
    assert cols.line({"pid": 123456789, "comm": "a"}) == "a    123456789"


def test_title_sets_the_minimum_width_and_defaults_to_the_key() -> None:
    cols = Columns([Column("bytes", width=2, align=">"), Column("ifname")])
    assert [c.title for c in cols.columns] == ["BYTES", "IFNAME"]
    assert cols.columns[0].width == 5
    assert cols.header() == "BYTES IFNAME"
    assert cols.line({"bytes": 10, "ifname": "eth0"}) == "   10 eth0"


def test_last_column_is_padded_only_when_not_left_aligned() -> None:
    right = Columns([("a", "A", 2), ("b", "B", 4, ">")])
    assert right.line({"a": 1, "b": 2}) == "1     2"
    centre = Columns([("a", "A", 2), ("b", "B", 5, "^")])
    assert centre.line({"a": 1, "b": "x"}) == "1    x  "
    left = Columns([("a", "A", 2), ("b", "B", 8)])
    assert left.line({"a": 1, "b": "x"}) == "1  x"


def test_separator_may_contain_braces() -> None:
    cols = Columns([("a", "A", 1), ("b", "B", 1)], sep=" {} ")
    assert cols.header() == "A {} B"
    assert cols.line({"a": 1, "b": 2}) == "1 {} 2"


def test_values_with_braces_are_printed_verbatim() -> None:
    cols = Columns([("a", "A", 3), ("b", "B")])
    assert cols.line({"a": "{0}", "b": "{}"}) == "{0} {}"


def test_bools_print_as_words() -> None:
    assert Columns([("ok", "OK", 5), ("n", "N")]).line({"ok": True, "n": 0}) == "True  0"


def test_fit_grows_widths_to_the_data() -> None:
    cols = Columns([("comm", "COMM", 4), ("pid", "PID", 3, ">"), ("x", "X")])
    rows = [{"comm": "sshd", "pid": 1, "x": "a"}, {"comm": "kworker/0:1", "pid": 31337, "x": None}]
    fitted = cols.fit(rows)
    assert [c.width for c in fitted.columns] == [11, 5, 1]
    assert [fitted.header(), *map(fitted.line, rows)] == [
        "COMM          PID X",
        "sshd            1 a",
        "kworker/0:1 31337 -",
    ]
    assert [c.width for c in cols.columns] == [4, 3, 1]


def test_bad_specs() -> None:
    with pytest.raises(ValueError, match="align"):
        Columns([("a", "A", 3, "=")])
    with pytest.raises(ValueError, match="negative"):
        Columns([("a", "A", -1)])
    with pytest.raises(ValueError, match="at least one"):
        Columns([])
    with pytest.raises(TypeError):
        Columns([(1, "A")])


CELL = st.one_of(st.none(), st.integers(), st.text(alphabet="abc xyz-{}", max_size=20))


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=12), st.sampled_from("<>^")),
                min_size=1, max_size=6).flatmap(
    lambda specs: st.tuples(st.just(specs),
                            st.lists(st.tuples(*[CELL] * len(specs)), min_size=1, max_size=10))))
def test_fitted_lines_align_with_the_header(case: tuple) -> None:
    specs, values = case
    cols = Columns([(f"k{i}", f"K{i}", width, align) for i, (width, align) in enumerate(specs)])
    rows = [{f"k{i}": v for i, v in enumerate(vals)} for vals in values]
    fitted = cols.fit(rows)
    widths = [c.width for c in fitted.columns]
    for row in rows:
        line = fitted.line(row)
        start = 0
        for i, (column, cell) in enumerate(zip(fitted.columns, fitted.cells(row))):
            last = i == len(widths) - 1
            field = line[start:] if last else line[start:start + widths[i]]
            assert field.strip(" ") == cell.strip(" ") and cell in field
            if not (last and column.align == "<"):
                assert len(field) == widths[i]
            start += widths[i] + 1
