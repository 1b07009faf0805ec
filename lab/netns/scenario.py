"""Scenarios: traffic that causes a known number of drops of known kinds, and the events a
correct drop monitor must print for it, declared in ``lab/scenarios/NAME.toml``.

An expectation is ``count`` events whose declared keys (a subset of the drop monitor's JSON
keys) equal the declared values exactly. ``netns`` names a namespace of the topology (it is
compared as that namespace's inode); ``reason`` is either a name or a table from kernel series
to name, of which the greatest series not above the running kernel applies; the name
:data:`NO_REASON` stands for a kernel whose ``skb:kfree_skb`` carries no reason (null).
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from . import tomlfile, topology
from .declared import Table
from .errors import DeclarationError
from .traffic import Sender

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
NO_REASON = "none"

#: the keys of a drop event an expectation may declare, with their TOML types
EVENT_KEYS: dict[str, type] = {
    "src": str, "dst": str, "ip_id": int, "vlan": int, "proto": str, "sport": int,
    "dport": int, "icmp_type": int, "icmp_code": int, "ifname": str, "reason": str,
    "netns": str, "comm": str, "location": str,
}


def kernel_series(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of ``release`` (default: the running kernel)."""
    match = re.match(r"(\d+)\.(\d+)", release or platform.release())
    if not match:
        raise DeclarationError(f"cannot read a kernel version from {release!r}")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class Expectation:
    """``count`` drop events whose ``fields`` equal these values."""

    count: int
    fields: Mapping[str, Any]

    def matches(self, event: Mapping[str, Any]) -> bool:
        return all(key in event and event[key] == value for key, value in self.fields.items())

    def describe(self) -> str:
        return " ".join(f"{key}={shorten(value)}" for key, value in self.fields.items())


def shorten(value: Any, limit: int = 48) -> str:
    """*value* as text, long strings (in lists too) cut to their start and length."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shorten(v, limit) for v in value) + "]"
    if isinstance(value, str) and (len(value) > limit or not value or " " in value):
        return repr(value) if len(value) <= limit else f"{value[:8]!r}...({len(value)} chars)"
    return str(value)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    sender: Sender
    settle: float                  # seconds the kernel may take to drop after the traffic is sent
    expect: tuple[Expectation, ...]

    @property
    def total(self) -> int:
        return sum(e.count for e in self.expect)

    def expectations(self, inodes: Mapping[str, int]) -> list[Expectation]:
        """The expectations with namespace names replaced by ``inodes`` (local name -> inode)."""
        out = []
        for e in self.expect:
            fields = dict(e.fields)
            if "netns" in fields:
                fields["netns"] = inodes[fields["netns"]]
            out.append(Expectation(e.count, fields))
        return out


@dataclass(frozen=True)
class ScenarioSet:
    topology: topology.Topology
    scenarios: tuple[Scenario, ...]

    def select(self, names: list[str]) -> ScenarioSet:
        """Only the scenarios named (all when ``names`` is empty), in file order."""
        unknown = sorted(set(names) - {s.name for s in self.scenarios})
        if unknown:
            raise DeclarationError(f"no scenario {unknown[0]!r} (known: {', '.join(s.name for s in self.scenarios)})")
        return ScenarioSet(self.topology, tuple(s for s in self.scenarios if not names or s.name in names))


def load(name_or_path: str = "drops", release: str | None = None) -> ScenarioSet:
    """The scenarios of ``name_or_path``, with reasons resolved for kernel ``release``."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SCENARIO_DIR / f"{name_or_path}.toml"
    data = tomlfile.read(path)
    doc = Table(data, str(path))
    topo = topology.load(doc.get("topology", str))
    series = kernel_series(release)
    scenarios = []
    for t in doc.tables("scenario"):
        scenarios.append(_scenario(t, topo, series))
        t.done()
    doc.done()
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise DeclarationError(f"{path}: a scenario name is used twice")
    return ScenarioSet(topo, tuple(scenarios))


def _scenario(t: Table, topo: topology.Topology, series: tuple[int, int]) -> Scenario:
    expect = []
    for e in t.tables("expect"):
        count = (_per_kernel(e.table("count"), series, int) if isinstance(e.data.get("count"), dict)
                 else e.get("count", int))
        fields = {key: _field(e, key, kind, topo, series) for key, kind in EVENT_KEYS.items() if key in e.data}
        e.done()
        if count < 0 or not fields:
            raise DeclarationError(f"{e.where}: declare a count >= 0 and at least one event key")
        expect.append(Expectation(count, fields))
    if not expect:
        raise DeclarationError(f"{t.where}: declare what a correct tool must see ([[scenario.expect]])")
    return Scenario(t.get("name", str), t.get("summary", str), Sender(topo, t.table("traffic")),
                    float(t.get("settle", (int, float), 0.0)), tuple(expect))


def _field(e: Table, key: str, kind: type, topo: topology.Topology, series: tuple[int, int]) -> Any:
    if key == "reason" and isinstance(e.data[key], dict):
        return _reason_for(e.table(key), series)
    value = e.get(key, kind)
    if key == "netns" and value not in topo.namespaces:
        raise DeclarationError(f"{e.where}: unknown namespace {value!r}")
    return value


def _per_kernel(table: Table, series: tuple[int, int], kind: type) -> Any:
    """The value declared for the newest listed kernel series not after ``series``."""
    by_series = {kernel_series(k): table.get(k, kind) for k in table.data}
    table.done()
    applicable = [s for s in by_series if s <= series]
    if not applicable:
        raise DeclarationError(f"{table.where}: nothing declared for kernel {series[0]}.{series[1]}")
    return by_series[max(applicable)]


def _reason_for(table: Table, series: tuple[int, int]) -> str | None:
    name = _per_kernel(table, series, str)
    return None if name == NO_REASON else name
