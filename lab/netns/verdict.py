"""Expected versus observed events: exact equality on the declared keys, exact counts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from .scenario import Expectation


@dataclass(frozen=True)
class Verdict:
    scenario: str
    expected: tuple[tuple[Expectation, int], ...]   # each expectation and how many events matched it
    unexpected: tuple[Mapping[str, Any], ...]        # lab events no expectation matched
    problems: tuple[str, ...] = ()                   # what makes the observation itself unsound

    @property
    def ok(self) -> bool:
        return not self.unexpected and not self.problems and all(e.count == seen for e, seen in self.expected)

    def with_problems(self, problems: Sequence[str]) -> Verdict:
        return replace(self, problems=self.problems + tuple(problems))

    @property
    def observed(self) -> int:
        return sum(seen for _, seen in self.expected) + len(self.unexpected)


def judge(scenario: str, expectations: Sequence[Expectation], events: Iterable[Mapping[str, Any]],
          problems: Sequence[str] = ()) -> Verdict:
    """Attribute each event to the first expectation it matches that still has room (the
    first it matches once all are full, which then over-counts); the rest are unexpected."""
    seen = [0] * len(expectations)
    unexpected = []
    for event in events:
        matching = [i for i, e in enumerate(expectations) if e.matches(event)]
        if not matching:
            unexpected.append(event)
            continue
        room = [i for i in matching if seen[i] < expectations[i].count]
        seen[(room or matching)[0]] += 1
    return Verdict(scenario, tuple(zip(expectations, seen)), tuple(unexpected), tuple(problems))


def project(expectations: Sequence[Expectation], keys: frozenset[str]) -> list[Expectation]:
    """The expectations as an observer that reports only ``keys`` sees them: other keys
    dropped, expectations that became equal merged (counts summed)."""
    merged: dict[tuple, int] = {}
    for e in expectations:
        fields = tuple((k, v) for k, v in e.fields.items() if k in keys)
        merged[fields] = merged.get(fields, 0) + e.count
    return [Expectation(count, dict(fields)) for fields, count in merged.items()]


def expand(rows: Iterable[Mapping[str, Any]], count: str = "count") -> list[dict[str, Any]]:
    """Counted rows (a tool's summary) as events to judge: each row without its *count*
    key, repeated that many times, so that counts are judged exactly as events are."""
    out = []
    for row in rows:
        n = row[count]
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"a count of {n!r} in {dict(row)}")
        out += [{k: v for k, v in row.items() if k != count}] * n
    return out
