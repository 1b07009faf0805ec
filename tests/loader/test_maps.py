"""Live maps on the running kernel: every type it has, the dict API, batches, pins, mmap."""

from __future__ import annotations

import errno
import os
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfasm import features
from pybpfasm.errors import UsageError
from pybpfasm.maps import Map, MapSpec, possible_cpus
from pybpfasm.sys import MapFlag, MapType, SyscallError, UpdateFlag

#: a working spec for each map type the issue names
SPECS = {
    MapType.HASH: MapSpec(MapType.HASH, 4, 8, 64),
    MapType.ARRAY: MapSpec(MapType.ARRAY, 4, 8, 64),
    MapType.PERCPU_HASH: MapSpec(MapType.PERCPU_HASH, 4, 8, 64),
    MapType.PERCPU_ARRAY: MapSpec(MapType.PERCPU_ARRAY, 4, 8, 64),
    MapType.LRU_HASH: MapSpec(MapType.LRU_HASH, 4, 8, 64),
    MapType.LRU_PERCPU_HASH: MapSpec(MapType.LRU_PERCPU_HASH, 4, 8, 64),
    MapType.LPM_TRIE: MapSpec(MapType.LPM_TRIE, "<I4s", 4, 64),
    MapType.STACK_TRACE: MapSpec(MapType.STACK_TRACE, 4, 8 * 127, 64),
    MapType.RINGBUF: MapSpec(MapType.RINGBUF, max_entries=1 << 16),
    MapType.PERF_EVENT_ARRAY: MapSpec(MapType.PERF_EVENT_ARRAY),
    MapType.DEVMAP: MapSpec(MapType.DEVMAP, 4, 4, 8),
    MapType.DEVMAP_HASH: MapSpec(MapType.DEVMAP_HASH, 4, 4, 8),
    MapType.PROG_ARRAY: MapSpec(MapType.PROG_ARRAY, max_entries=8),
    MapType.ARRAY_OF_MAPS: MapSpec(MapType.ARRAY_OF_MAPS, max_entries=8, inner=MapSpec(MapType.ARRAY, 4, 4, 1)),
    MapType.HASH_OF_MAPS: MapSpec(MapType.HASH_OF_MAPS, max_entries=8, inner=MapSpec(MapType.ARRAY, 4, 4, 1)),
    MapType.QUEUE: MapSpec(MapType.QUEUE, value=8, max_entries=8),
    MapType.STACK: MapSpec(MapType.STACK, value=8, max_entries=8),
}


@pytest.mark.parametrize("kind", list(SPECS), ids=lambda k: k.name.lower())
def test_create_every_type(kind: MapType) -> None:
    if not features.map_type(kind):
        pytest.skip(f"{kind.name.lower()} maps: not in this kernel")
    with SPECS[kind].create() as m:
        info = m.info()
        assert (info.type, info.max_entries) == (kind, SPECS[kind].max_entries)
    assert m.closed


keys = st.integers(0, 2**32 - 1)
values = st.integers(0, 2**64 - 1)


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(keys, values, max_size=48))
@pytest.mark.parametrize("kind", [MapType.HASH, MapType.LRU_HASH])
def test_hash_behaves_like_a_dict(kind: MapType, model: dict[int, int]) -> None:
    with MapSpec(kind, 4, 8, 64).create() as m:
        for k, v in model.items():
            m[k] = v
        assert dict(m.items()) == model
        assert sorted(m.keys()) == sorted(model)
        assert len(m) == len(model)
        for k in list(model)[::2]:
            del m[k]
            del model[k]
            assert k not in m
        assert dict(m.items()) == model
        for k, v in model.items():
            assert m[k] == v and k in m
        m.clear()
        assert dict(m.items()) == {}


def test_missing_keys() -> None:
    with MapSpec(MapType.HASH, 4, 8, 4).create() as m:
        with pytest.raises(KeyError):
            m[1]
        with pytest.raises(KeyError):
            del m[1]
        assert m.lookup(1, "default") == "default"
        m.update(1, 5, UpdateFlag.NOEXIST)
        with pytest.raises(SyscallError) as err:
            m.update(1, 6, UpdateFlag.NOEXIST)
        assert err.value.errno == errno.EEXIST


def test_full_hash_says_so() -> None:
    with MapSpec(MapType.HASH, 4, 4, 2).create() as m:
        m[1], m[2] = 1, 2
        with pytest.raises(SyscallError, match=r"the map is full \(2 entries\)"):
            m[3] = 3


def test_bad_values_are_usage_errors() -> None:
    with MapSpec(MapType.HASH, 4, 8, 4).create() as m, \
            pytest.raises(UsageError, match="expected 4 bytes"):
        m[b"abc"] = 1
    with MapSpec(MapType.PERCPU_ARRAY, 4, 4, 1).create() as m, \
            pytest.raises(UsageError, match="per-CPU value"):
        m[0] = [1] * (possible_cpus() + 1)


def test_array_clear_zeroes() -> None:
    with MapSpec(MapType.ARRAY, 4, 8, 8).create() as m:
        m.update_batch((i, i * 3) for i in range(8))
        assert m.values() == [i * 3 for i in range(8)]
        m.clear()
        assert m.values() == [0] * 8


@pytest.mark.parametrize("kind", [MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH])
def test_percpu_values_are_lists(kind: MapType) -> None:
    n = possible_cpus()
    with MapSpec(kind, 4, 4, 8).create() as m:
        m[3] = [10 + cpu for cpu in range(n)]
        assert m[3] == [10 + cpu for cpu in range(n)]
        m[4] = 7  # one value for every CPU
        assert m[4] == [7] * n
        assert dict(m.items())[3] == [10 + cpu for cpu in range(n)]


def test_batch_and_get_next_key_agree() -> None:
    with MapSpec(MapType.HASH, 8, 4, 4096).create() as m:
        m.update_batch((k, k & 0xFFFF) for k in range(0, 3000 * 7, 7))
        batched = sorted(m.lookup_batch(chunk=64))
        walked = sorted((k, m[k]) for k in m)  # iteration is BPF_MAP_GET_NEXT_KEY
        assert batched == walked and len(batched) == 3000
        m.delete_batch(k for k in range(0, 1500 * 7, 7))
        assert len(m) == 1500


def test_batch_falls_back_where_the_kernel_has_none() -> None:
    # LPM tries have no batch operations: items() and update_batch go one element at a time
    with MapSpec(MapType.LPM_TRIE, "<I4s", 4, 16).create() as m:
        m.update_batch([((8, b"\x0a\0\0\0"), 1), ((24, b"\x0a\x01\x02\0"), 2)])
        assert m.lookup((32, b"\x0a\x01\x02\x03")) == 2
        assert m.lookup((32, b"\x0a\x09\x09\x09")) == 1
        assert m.lookup((32, b"\x0b\0\0\0")) is None
        assert sorted(m.items()) == [((8, b"\x0a\0\0\0"), 1), ((24, b"\x0a\x01\x02\0"), 2)]


@pytest.mark.parametrize("kind, order", [(MapType.QUEUE, [1, 2, 3]), (MapType.STACK, [3, 2, 1])])
def test_queue_and_stack(kind: MapType, order: list[int]) -> None:
    with MapSpec(kind, value=8, max_entries=3).create() as m:
        for v in (1, 2, 3):
            m.push(v)
        assert m.peek() == order[0]
        assert [m.pop() for _ in range(4)] == [*order, None]


def test_maps_of_maps_hold_maps() -> None:
    inner_spec = MapSpec(MapType.ARRAY, 4, 4, 1)
    with MapSpec(MapType.HASH_OF_MAPS, max_entries=4, inner=inner_spec).create() as outer, \
            inner_spec.create() as inner:
        inner[0] = 42
        outer[7] = inner
        with Map.from_id(outer[7]) as again:
            assert again[0] == 42
    with pytest.raises(UsageError, match="needs an inner map spec"):
        MapSpec(MapType.ARRAY_OF_MAPS, max_entries=4).create()


def test_pin_and_open_pinned() -> None:
    path = f"/sys/fs/bpf/pybpfasm-test-{uuid.uuid4().hex[:8]}"
    with MapSpec(MapType.HASH, 4, "<IH", 4, name="pinned").create() as m:
        m[1] = (7, 8)
        m.pin(path)
    try:
        with Map.open_pinned(path, value="<IH") as again:
            assert again[1] == (7, 8)
            assert again.spec.name == "pinned"
    finally:
        os.unlink(path)


def test_freeze_blocks_user_writes() -> None:
    with MapSpec(MapType.ARRAY, 4, 4, 2).create() as m:
        m[0] = 1
        m.freeze()
        with pytest.raises(SyscallError) as err:
            m[0] = 2
        assert err.value.errno == errno.EPERM
        assert m[0] == 1


def test_mmapable_array_shares_memory() -> None:
    with MapSpec(MapType.ARRAY, 4, 8, 16, flags=MapFlag.MMAPABLE).create() as m, m.mmap() as mem:
        m[5] = 0x1122334455667788
        assert struct.unpack_from("=Q", mem.buffer, 5 * 8)[0] == 0x1122334455667788
        struct.pack_into("=Q", mem.buffer, 3 * 8, 99)
        assert m[3] == 99
    with MapSpec(MapType.ARRAY, 4, 8, 4).create() as plain, pytest.raises(UsageError):
        plain.mmap()


def test_use_after_close_is_an_error() -> None:
    m = MapSpec(MapType.ARRAY, 4, 4, 1).create()
    m.close()
    m.close()
    with pytest.raises(Exception, match="after close"):
        m[0]
