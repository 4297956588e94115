"""The index rebuilt from Confluent-format records, as a restart replays them."""

from __future__ import annotations

import json

from psmesh.registry.compatibility import CompatibilityLevel
from psmesh.registry.records import ConfigKey, ConfigValue, SchemaKey, SchemaValue, decode_key
from psmesh.registry.store import LATEST, SchemaIndex

R1 = '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}'
R2 = '{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}'


def _schema(index: SchemaIndex, subject: str, version: int, schema_id: int, text: str, deleted=False) -> None:
    index.apply(SchemaKey(subject, version).encode(), SchemaValue(subject, version, schema_id, text, deleted).encode())


def test_keys_are_serialized_as_confluent_writes_them():
    assert SchemaKey("s", 2).encode() == b'{"keytype":"SCHEMA","subject":"s","version":2,"magic":1}'
    assert ConfigKey(None).encode() == b'{"keytype":"CONFIG","subject":null,"magic":0}'
    assert ConfigKey("s").encode() == b'{"keytype":"CONFIG","subject":"s","magic":0}'


def test_schema_value_omits_schema_type_for_avro_only():
    avro_value = json.loads(SchemaValue("s", 1, 7, R1).encode())
    assert avro_value == {"subject": "s", "version": 1, "id": 7, "schema": R1, "deleted": False}
    other = json.loads(SchemaValue("s", 1, 7, "{}", schema_type="JSON").encode())
    assert other["schemaType"] == "JSON"


def test_replay_gives_versions_ids_and_levels():
    index = SchemaIndex()
    _schema(index, "a", 1, 1, R1)
    _schema(index, "a", 2, 2, R2)
    _schema(index, "b", 1, 1, R1)
    index.apply(ConfigKey("a").encode(), ConfigValue("FULL").encode())
    index.apply(ConfigKey(None).encode(), ConfigValue("NONE").encode())

    assert index.subjects() == ["a", "b"]
    assert [v.version for v in index.versions("a")] == [1, 2]
    assert index.get("a", LATEST).schema_id == 2
    assert index.schema_count == 2
    assert index.max_id == 2
    assert [(v.subject, v.version) for v in index.versions_of_id(1)] == [("a", 1), ("b", 1)]
    assert index.level("a") is CompatibilityLevel.FULL
    assert index.level("b") is CompatibilityLevel.NONE


def test_later_record_for_a_key_wins_and_soft_delete_hides_the_version():
    index = SchemaIndex()
    _schema(index, "a", 1, 1, R1)
    _schema(index, "a", 2, 2, R2)
    _schema(index, "a", 2, 2, R2, deleted=True)
    assert [v.version for v in index.versions("a")] == [1]
    assert [v.version for v in index.versions("a", include_deleted=True)] == [1, 2]
    # A soft-deleted version's schema is still served by id (old data must stay readable).
    assert index.schema_by_id(2).text == R2


def test_tombstone_removes_the_version_but_not_the_highest_id():
    index = SchemaIndex()
    _schema(index, "a", 1, 5, R1, deleted=True)
    index.apply(SchemaKey("a", 1).encode(), None)
    assert not index.has_subject("a")
    assert index.schema_count == 0
    assert index.max_id == 5


def test_config_tombstone_falls_back_to_global_then_backward():
    index = SchemaIndex()
    index.apply(ConfigKey("a").encode(), ConfigValue("FORWARD").encode())
    index.apply(ConfigKey("a").encode(), None)
    assert index.subject_level("a") is None
    assert index.level("a") is CompatibilityLevel.BACKWARD


def test_records_of_older_confluent_servers_are_understood():
    index = SchemaIndex()
    _schema(index, "a", 1, 1, R1)
    _schema(index, "a", 2, 2, R2)
    index.apply(b'{"keytype":"DELETE_SUBJECT","subject":"a","magic":0}', b'{"subject":"a","version":2}')
    assert index.versions("a") == []
    index.apply(b'{"keytype":"CLEAR_SUBJECT","subject":"a","magic":0}', b'{"subject":"a","version":1}')
    assert [v.version for v in index.versions("a", include_deleted=True)] == [2]


def test_foreign_key_bytes_are_reused_for_rewrites():
    # Compaction compares key bytes, so a key written by another server with a
    # different spelling must be rewritten with those same bytes.
    index = SchemaIndex()
    foreign = b'{"keytype": "SCHEMA", "subject": "a", "version": 1, "magic": 1}'
    index.apply(foreign, SchemaValue("a", 1, 1, R1).encode())
    assert index.raw_key(SchemaKey("a", 1)) == foreign
    assert index.raw_key(SchemaKey("a", 2)) == SchemaKey("a", 2).encode()


def test_mode_noop_and_malformed_records_are_skipped():
    index = SchemaIndex()
    index.apply(b'{"keytype":"MODE","subject":null,"magic":0}', b'{"mode":"READWRITE"}')
    index.apply(b'{"keytype":"NOOP","magic":0}', None)
    index.apply(b"not json", b"{}")
    index.apply(None, b"{}")
    assert index.records_skipped == 4
    assert index.subjects(include_deleted=True) == []


def test_decode_key_round_trips():
    assert decode_key(SchemaKey("x", 3).encode()) == SchemaKey("x", 3)
    assert decode_key(ConfigKey(None).encode()) == ConfigKey(None)
