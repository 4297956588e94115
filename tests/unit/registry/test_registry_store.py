"""SchemaStore rules over an in-memory record log (no Kafka): ids, versions, deletes, failures."""

from __future__ import annotations

import asyncio
import json
from typing import Sequence

import pytest

from psmesh.registry.canonical import parse_avro
from psmesh.registry.compatibility import CompatibilityLevel
from psmesh.registry.exceptions import (
    IncompatibleSchemaError,
    SchemaNotFoundError,
    StoreError,
    SubjectConfigNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from psmesh.registry.store import LATEST, LogRecord, SchemaStore


class MemoryRecordLog:
    """A record log kept in a list; ``landed_but_failed`` simulates an ambiguous produce."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self.fail = False
        self.landed_but_failed = False

    def read_all(self) -> list[LogRecord]:
        return list(self.records)

    def append(self, records: Sequence[LogRecord]) -> None:
        if self.fail:
            raise StoreError("broker unavailable")
        self.records.extend(records)
        if self.landed_but_failed:
            raise StoreError("delivery timed out")

    def close(self) -> None:
        pass


def _schema(*fields: dict, name: str = "Project"):
    return parse_avro(json.dumps({"type": "record", "name": name, "fields": list(fields)}))


V1 = _schema({"name": "id", "type": "long"})
V2 = _schema({"name": "id", "type": "long"}, {"name": "budget", "type": "double", "default": 0.0})
BREAKING = _schema({"name": "id", "type": "long"}, {"name": "owner", "type": "string"})
OTHER = _schema({"name": "code", "type": "string"}, name="Client")


def run(coro):
    return asyncio.run(coro)


async def _started(log: MemoryRecordLog | None = None) -> SchemaStore:
    store = SchemaStore(log or MemoryRecordLog())
    await store.start()
    return store


def test_same_schema_gets_same_id_across_subjects_and_new_version_numbers():
    async def scenario():
        store = await _started()
        a = await store.register("a", V1)
        b = await store.register("b", V1)
        a2 = await store.register("a", V2)
        return a, b, a2

    a, b, a2 = run(scenario())
    assert (a.schema_id, a.version) == (1, 1)
    assert (b.schema_id, b.version) == (1, 1)
    assert (a2.schema_id, a2.version) == (2, 2)


def test_re_registering_a_live_version_writes_nothing():
    async def scenario():
        log = MemoryRecordLog()
        store = await _started(log)
        first = await store.register("a", V1)
        count = len(log.records)
        again = await store.register("a", V1)
        return first, again, count, len(log.records)

    first, again, before, after = run(scenario())
    assert again.schema_id == first.schema_id and not again.created
    assert before == after == 1


def test_a_field_ordered_ascending_explicitly_is_the_version_already_registered():
    ascending = _schema({"name": "id", "type": "long", "order": "ascending"})

    async def scenario():
        log = MemoryRecordLog()
        store = await _started(log)
        first = await store.register("a", V1)
        again = await store.register("a", ascending)
        other_subject = await store.register("b", ascending)
        return first, again, other_subject, store, len(log.records)

    first, again, other_subject, store, written = run(scenario())
    assert (again.schema_id, again.version, again.created) == (first.schema_id, first.version, False)
    assert other_subject.schema_id == first.schema_id
    assert store.lookup("a", ascending).version == 1
    assert store.index.schema_by_id(first.schema_id).text == V1.text
    assert written == 2


def test_a_nested_type_in_the_null_namespace_gets_its_own_id():
    def with_line(line: dict):
        line_type = {"type": "record", "fields": [{"name": "qty", "type": "int"}], **line}
        document = {"type": "record", "name": "Project", "namespace": "firm.erp",
                    "fields": [{"name": "line", "type": line_type}]}
        return parse_avro(json.dumps(document))

    inherited = with_line({"name": "Line"})
    null_namespace = with_line({"name": "Line", "namespace": ""})

    async def scenario():
        store = await _started()
        first = await store.register("a", inherited)
        second = await store.register("b", null_namespace)
        return first, second, store

    first, second, store = run(scenario())
    assert second.schema_id != first.schema_id
    assert store.index.schema_by_id(second.schema_id).text == null_namespace.text


def test_incompatible_schema_is_refused_and_not_written():
    async def scenario():
        log = MemoryRecordLog()
        store = await _started(log)
        await store.register("a", V1)
        with pytest.raises(IncompatibleSchemaError) as info:
            await store.register("a", BREAKING)
        return info.value, len(log.records)

    error, written = run(scenario())
    assert error.http_status == 409 and error.error_code == 409
    assert "owner" in error.message and "/fields/1" in error.message
    assert written == 1


def test_level_none_lets_an_incompatible_schema_in():
    async def scenario():
        store = await _started()
        await store.register("a", V1)
        await store.set_level("a", CompatibilityLevel.NONE)
        return await store.register("a", BREAKING)

    assert run(scenario()).version == 2


def test_restart_replays_to_the_same_state():
    async def scenario():
        log = MemoryRecordLog()
        store = await _started(log)
        await store.register("a", V1)
        await store.register("a", V2)
        await store.register("b", OTHER)
        await store.delete_version("a", 1)
        await store.set_level("b", CompatibilityLevel.FULL)
        restarted = await _started(log)
        return store.index, restarted.index, await restarted.register("c", V2)

    before, after, again = run(scenario())
    for subject in ("a", "b"):
        assert after.versions(subject, include_deleted=True) == before.versions(subject, include_deleted=True)
    assert after.level("b") is CompatibilityLevel.FULL
    assert again.schema_id == 2


def test_lookup_finds_the_version_or_says_which_is_missing():
    async def scenario():
        store = await _started()
        await store.register("a", V1)
        return store

    store = run(scenario())
    assert store.lookup("a", V1).version == 1
    with pytest.raises(SchemaNotFoundError):
        store.lookup("a", OTHER)
    with pytest.raises(SubjectNotFoundError):
        store.lookup("nope", V1)


def test_soft_then_hard_delete_of_a_subject_follows_confluent_rules():
    async def scenario():
        store = await _started()
        await store.register("a", V1)
        await store.register("a", V2)
        await store.set_level("a", CompatibilityLevel.FULL)
        with pytest.raises(SubjectNotSoftDeletedError):
            await store.delete_subject("a", permanent=True)
        soft = await store.delete_subject("a")
        assert store.index.subject_level("a") is None
        with pytest.raises(SubjectSoftDeletedError):
            await store.delete_subject("a")
        # Soft-deleted schemas stay readable by id.
        assert store.index.schema_by_id(1)
        hard = await store.delete_subject("a", permanent=True)
        with pytest.raises(SubjectNotFoundError):
            await store.delete_subject("a")
        return soft, hard, store

    soft, hard, store = run(scenario())
    assert soft == [1, 2] and hard == [1, 2]
    with pytest.raises(SchemaNotFoundError):
        store.index.schema_by_id(1)


def test_version_delete_rules():
    async def scenario():
        store = await _started()
        await store.register("a", V1)
        await store.register("a", V2)
        with pytest.raises(VersionNotSoftDeletedError):
            await store.delete_version("a", 2, permanent=True)
        assert await store.delete_version("a", LATEST) == 2
        with pytest.raises(VersionSoftDeletedError):
            await store.delete_version("a", 2)
        assert await store.delete_version("a", 2, permanent=True) == 2
        with pytest.raises(VersionNotFoundError):
            await store.delete_version("a", 2)
        return store

    store = run(scenario())
    assert [v.version for v in store.index.versions("a", include_deleted=True)] == [1]


def test_re_registering_a_soft_deleted_schema_keeps_its_id_with_a_new_version():
    async def scenario():
        store = await _started()
        await store.register("a", V1)
        await store.delete_subject("a")
        return await store.register("a", V1)

    again = run(scenario())
    assert (again.schema_id, again.version) == (1, 2)


def test_ids_are_not_reused_after_hard_delete():
    async def scenario():
        store = await _started()
        await store.register("a", V1)
        await store.register("a", V2)
        await store.delete_version("a", 2)
        await store.delete_version("a", 2, permanent=True)
        return await store.register("b", OTHER)

    assert run(scenario()).schema_id == 3


def test_failed_write_is_not_applied_and_its_id_is_never_reused():
    async def scenario():
        log = MemoryRecordLog()
        store = await _started(log)
        await store.register("a", V1)
        log.fail = True
        with pytest.raises(StoreError):
            await store.register("b", OTHER)
        assert store.index.versions("b") == []
        log.fail = False
        return await store.register("b", OTHER)

    assert run(scenario()).schema_id == 3


def test_write_that_landed_despite_an_error_is_picked_up_before_the_next_write():
    async def scenario():
        log = MemoryRecordLog()
        store = await _started(log)
        log.landed_but_failed = True
        with pytest.raises(StoreError):
            await store.register("a", V1)
        log.landed_but_failed = False
        again = await store.register("a", V1)
        return again, log

    again, log = run(scenario())
    assert (again.schema_id, again.version) == (1, 1) and not again.created
    assert len(log.records) == 1


def test_subject_level_delete_and_global_reset():
    async def scenario():
        store = await _started()
        await store.register("a", V1)
        with pytest.raises(SubjectConfigNotFoundError):
            await store.delete_level("a")
        with pytest.raises(SubjectNotFoundError):
            await store.delete_level("nope")
        await store.set_level("a", CompatibilityLevel.FORWARD)
        await store.set_level(None, CompatibilityLevel.FULL)
        assert await store.delete_level("a") is CompatibilityLevel.FORWARD
        assert store.index.level("a") is CompatibilityLevel.FULL
        assert await store.delete_level(None) is CompatibilityLevel.FULL
        return store

    assert run(scenario()).index.level("a") is CompatibilityLevel.BACKWARD


def test_check_against_one_version_ignores_the_others():
    async def scenario():
        store = await _started()
        await store.set_level("a", CompatibilityLevel.NONE)
        await store.register("a", V1)
        await store.register("a", OTHER)
        await store.set_level("a", CompatibilityLevel.BACKWARD)
        return store

    store = run(scenario())
    assert store.check("a", V2, 1) == []
    assert store.check("a", V2, LATEST) != []
    with pytest.raises(VersionNotFoundError):
        store.check("a", V2, 9)
