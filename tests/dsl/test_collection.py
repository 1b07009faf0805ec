"""The Collection's lifecycle and its program cache, against the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pybpfasm.dsl import ArrayMap, Collection, Events, Record, kernel_enum, tracepoint, u32, u64
from pybpfasm.dsl.cache import ProgramCache
from pybpfasm.dsl.record import ENUM_NAMES

calls = ArrayMap(u64, 1, name="pbt_cc_calls")
State = kernel_enum("tcp_ca_state", u32, prefix="TCP_CA_")


class Note(Record):
    state: State
    pid: u32


notes = Events(Note, 1 << 12, name="pbt_cc_notes", kind="ringbuf")


@tracepoint("syscalls", "sys_enter_getppid")
def on_getppid(b, ctx, pid: int):
    with b.if_((b.get_current_pid_tgid() >> 32) == pid):
        calls.increment(b, 0)
        with notes.reserve(b, ctx.value) as n:
            n.state = 4  # TCP_CA_Loss
            n.pid = pid


def _count_calls(coll: Collection, times: int) -> int:
    coll.attach(on_getppid)
    for _ in range(times):
        os.getppid()
    return coll.map(calls)[0]


def _prog_ids() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True)
    return {p["id"] for p in json.loads(out.stdout) if p.get("name") == "on_getppid"}


def test_loading_again_replaces_the_program(tmp_path):
    with Collection() as coll:
        first = coll.load(on_getppid, os.getpid())
        coll.attach(on_getppid)
        before = _prog_ids()
        second = coll.load(on_getppid, os.getpid())
        assert first.closed and not second.closed
        assert len(_prog_ids()) == len(before)  # the old program is gone, not leaked
        assert coll.links == []  # its link went with it
        assert _count_calls(coll, 3) == 3


def test_a_cached_build_loads_without_building(tmp_path):
    cache = ProgramCache(tmp_path)
    with Collection(cache=cache) as coll:
        coll.load(on_getppid, os.getpid())
        assert on_getppid not in coll.cached
        assert _count_calls(coll, 2) == 2
    assert len(list(tmp_path.glob("*.json"))) == 1
    ENUM_NAMES.clear()  # the names must come back from the cache, not from BTF
    with Collection(cache=ProgramCache(tmp_path)) as coll:
        coll.load(on_getppid, os.getpid())
        assert on_getppid in coll.cached
        assert _count_calls(coll, 4) == 4
        from pybpfasm.events import RingBuffer

        with notes.reader(coll) as ring:
            assert isinstance(ring, RingBuffer)
            got = ring.read()
    assert [(n.state, n.pid) for n in got] == [("Loss", os.getpid())] * 4


def test_other_options_are_another_entry(tmp_path):
    with Collection(cache=ProgramCache(tmp_path)) as coll:
        coll.load(on_getppid, os.getpid())
        coll.load(on_getppid, 1)
        assert on_getppid not in coll.cached
    assert len(list(tmp_path.glob("*.json"))) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other map shape", "bad code"])
def test_a_damaged_entry_is_rebuilt(tmp_path, damage):
    with Collection(cache=ProgramCache(tmp_path)) as coll:
        coll.load(on_getppid, os.getpid())
    (entry,) = tmp_path.glob("*.json")
    text = entry.read_text()
    if damage == "garbage":
        entry.write_bytes(os.urandom(64))
    elif damage == "truncated":
        entry.write_text(text[: len(text) // 2])
    elif damage == "other map shape":
        data = json.loads(text)
        data["maps"][0][4] += 1  # max_entries
        entry.write_text(json.dumps(data))
    else:
        data = json.loads(text)
        data["code"] = "!!"
        entry.write_text(json.dumps(data))
    with Collection(cache=ProgramCache(tmp_path)) as coll:
        coll.load(on_getppid, os.getpid())
        assert on_getppid not in coll.cached
        assert _count_calls(coll, 2) == 2


def test_an_unwritable_cache_is_skipped(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with Collection(cache=ProgramCache(blocker / "below")) as coll:
        coll.load(on_getppid, os.getpid())
        assert _count_calls(coll, 1) == 1


def test_a_warm_start_needs_no_btf_and_no_builder(tmp_path):
    """dropmon from a warm cache imports neither the BTF reader nor the eDSL builder."""
    code = ("import sys\n"
            "from pybpfasm.cli import main\n"
            "status = main(['dropmon', '--json', '--netns', '1', '--duration', '0.2'])\n"
            "loaded = [m for m in ('pybpfasm.btf', 'pybpfasm.dsl.builder') if m in sys.modules]\n"
            "print(status, *loaded)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           timeout=60) for _ in range(2)]
    assert runs[0].stdout.split() == ["0", "pybpfasm.btf", "pybpfasm.dsl.builder"], runs[0].stderr
    assert runs[1].stdout.split() == ["0"], runs[1].stderr


def test_a_cache_others_may_write_is_never_used(tmp_path):
    """Root under ``sudo -E`` must not load programs a user planted in a shared directory."""
    shared = tmp_path / "shared"
    with Collection(cache=ProgramCache(shared)) as coll:
        coll.load(on_getppid, os.getpid())
    shared.chmod(0o777)
    with Collection(cache=ProgramCache(shared)) as coll:
        coll.load(on_getppid, os.getpid())
        assert on_getppid not in coll.cached


def test_an_entry_of_another_key_is_a_miss(tmp_path):
    cache = ProgramCache(tmp_path)
    with Collection(cache=cache) as coll:
        coll.load(on_getppid, os.getpid())
    (entry,) = tmp_path.glob("*.json")
    data = json.loads(entry.read_text())
    data["key"] += "x"  # as if another key had the same file name
    entry.write_text(json.dumps(data))
    with Collection(cache=ProgramCache(tmp_path)) as coll:
        coll.load(on_getppid, os.getpid())
        assert on_getppid not in coll.cached
