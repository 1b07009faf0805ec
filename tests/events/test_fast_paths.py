"""The reader's fast paths give exactly what the slow ones give.

* :class:`~pybpfasm.tools.common.output.JsonLines` is byte-identical to ``json.dumps``
  for any row (hypothesis: nested values, any text, floats including NaN and infinities);
* :func:`~pybpfasm.events.batch_decoder` decodes a run of ring records (headers, padding)
  to what the per-record decoder gives, for struct formats and eDSL records.
"""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfasm.dsl import Record, be16, char, u8, u32, u64
from pybpfasm.events import RINGBUF_HDR, batch_decoder, decoder
from pybpfasm.tools.common.output import JsonLines

pytestmark = pytest.mark.unprivileged

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), values, max_size=20))
def test_json_lines_are_json_dumps(row):
    assert JsonLines().line(row) == json.dumps(row)


def test_json_lines_refuse_what_json_refuses():
    with pytest.raises(TypeError):
        JsonLines().line({"x": object()})


class Sample(Record):
    ts: u64
    comm: char[16]
    port: be16
    flags: u8
    pid: u32


def ring_run(payloads: list[bytes]) -> bytes:
    """Ring records as the kernel lays them out: length word, page offset, data, padding."""
    out = b""
    for p in payloads:
        out += struct.pack("=II", len(p), 0) + p + bytes(-(RINGBUF_HDR + len(p)) % 8)
    return out


@pytest.mark.parametrize("record", ["=QQ", "=IHB", Sample])
def test_batch_decoding_is_record_decoding(record):
    size = struct.calcsize(record) if isinstance(record, str) else record.size
    payloads = [bytes((i * 7 + j) % 251 for j in range(size)) for i in range(5)]
    one = decoder(record)
    expected = [one(p, 0, size) for p in payloads]
    got_size, batch = batch_decoder(record)
    assert got_size == size
    assert batch(memoryview(ring_run(payloads))) == expected


def test_raw_bytes_have_no_batch_decoder():
    assert batch_decoder(None) is None
