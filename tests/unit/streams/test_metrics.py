"""The capture's metrics mean what their help text and docs/operating.md say."""

from __future__ import annotations

import struct
from pathlib import Path

from streams import metrics
from streams.envelope import key_schema, value_schema
from streams.publisher import AvroEncoder
from streams.registration import TableSchemas
from streams.source import CaptureConfig, CaptureSource
from tests.unit.streams.stand_ins import SilentPublisher

OPERATING = Path(__file__).resolve().parents[3] / "docs" / "operating.md"


class _Registrar:
    def schemas_for(self, topic, table, columns):
        return TableSchemas(topic, columns, AvroEncoder(key_schema(topic, columns), 11),
                            AvroEncoder(value_schema(topic, columns), 12))


def _cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def test_events_produced_counts_at_commit_before_any_acknowledgement_and_the_lag_gauge_waits_for_one(tmp_path):
    config = CaptureConfig(name="metricsrc", dsn="", database="m", tables=("public.notes",), slot="s", publication="p",
                           registry_url="http://unused", kafka={}, state_dir=tmp_path)
    capture = CaptureSource(config, registrar=_Registrar(), publisher=SilentPublisher())
    lag = metrics.LAG_SECONDS.labels("metricsrc")
    lag.set(0.5)
    relation = (b"R" + struct.pack("!I", 16400) + _cstr("public") + _cstr("notes") + b"d" + struct.pack("!H", 1)
                + b"\x01" + _cstr("id") + struct.pack("!Ii", 20, -1))
    messages = [b"B" + struct.pack("!QqI", 0x2000, 0, 7), relation,
                b"I" + struct.pack("!I", 16400) + b"N" + struct.pack("!H", 1) + b"t" + struct.pack("!I", 1) + b"1",
                b"C" + struct.pack("!BQQq", 0, 0x2000, 0x2030, 0)]
    for n, payload in enumerate(messages):
        capture._on_wal(payload, 0x1000 + n * 0x10, 0x1008 + n * 0x10)

    # Counted at the commit, though Kafka acknowledged nothing; the help text says so.
    assert metrics.EVENTS_PRODUCED.labels("metricsrc", "notes")._value.get() == 1
    assert "before Kafka acknowledges" in metrics.EVENTS_PRODUCED._documentation
    # The lag gauge moves only at an acknowledgement: with none, it keeps its value (its help text says so), and
    # the operations guide pairs the "capture behind" alert with one on the confirmed LSN.
    assert lag._value.get() == 0.5
    assert "does not grow while nothing is acknowledged" in metrics.LAG_SECONDS._documentation
    guide = OPERATING.read_text()
    assert "change events Kafka acknowledged" not in guide
    assert "changes(psmesh_cdc_confirmed_lsn[10m]) == 0" in guide
