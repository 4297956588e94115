"""What the router checks of a version it does not decode (processors/app.py ``_route_batch``): the decoder knows a
frame only once it has fetched that schema id from the registry."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import fastavro

from processors.codec import _HEADER, _MAGIC, ChangeEventDecoder

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "schemas" / "timeexp" / "expenses-key.avsc").read_text())


class Registry:
    def __init__(self) -> None:
        self.fetched: list[int] = []

    def get_schema(self, schema_id: int) -> SimpleNamespace:
        self.fetched.append(schema_id)
        return SimpleNamespace(schema_str=json.dumps(SCHEMA))


def framed(schema_id: int, record: dict, magic: int = _MAGIC) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(SCHEMA), record)
    return _HEADER.pack(magic, schema_id) + buf.getvalue()


def test_a_frame_is_known_once_its_schema_id_was_read():
    registry = Registry()
    decoder = ChangeEventDecoder(registry)
    record = framed(7, {"expense_id": 3})
    assert not decoder.known(record)
    assert decoder.decode(record) == {"expense_id": 3}
    assert decoder.known(record) and decoder.known(framed(7, {"expense_id": 4}))
    assert registry.fetched == [7]  # asking costs no registry call


def test_other_frames_are_not_known():
    decoder = ChangeEventDecoder(Registry())
    decoder.decode(framed(7, {"expense_id": 3}))
    assert not decoder.known(framed(8, {"expense_id": 3}))
    assert not decoder.known(framed(7, {"expense_id": 3}, magic=1))
    assert not decoder.known(b"\x00\x00\x00")  # shorter than the header
    assert not decoder.known(b"")
