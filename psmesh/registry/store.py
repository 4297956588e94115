"""The registry's state: a compacted Kafka topic, and the index rebuilt from it.

Contract:

- The topic is the only source of truth. :class:`SchemaIndex` changes only
  by :meth:`SchemaIndex.apply` of one topic record, the same code path at
  start-up (replaying the topic) and after a write, so a restarted registry
  has exactly the ids, versions and levels the previous one served.
- A write is produced with ``acks=all`` (idempotent producer), flushed, and
  applied to the index only after Kafka acknowledged it. A write Kafka did
  not acknowledge raises :class:`StoreError` and is not applied; because it
  may have landed all the same, the store re-reads the topic before its next
  write, and the schema id it would have used is never handed out again.
- Single writer: one registry process writes a given topic. Writes within
  it are serialized by a lock; two processes writing the same topic could
  hand the same id to different schemas (Confluent solves that with leader
  election, which this registry does not do). Any number of processes may
  *read* the topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Literal, Protocol, Sequence

import avro.schema
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from psmesh.registry.canonical import AVRO, AvroSchema, parse_avro
from psmesh.registry.compatibility import (
    DEFAULT_LEVEL,
    CompatibilityLevel,
    Incompatibility,
    check_compatibility,
    describe_incompatibilities,
)
from psmesh.registry.exceptions import (
    IncompatibleSchemaError,
    InvalidSchemaError,
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
from psmesh.registry.records import (
    ClearSubjectKey,
    ConfigKey,
    ConfigValue,
    DeleteSubjectKey,
    IgnoredKey,
    SchemaKey,
    SchemaValue,
    SubjectVersionValue,
    decode_key,
)

logger = logging.getLogger(__name__)

LATEST: Literal["latest"] = "latest"
VersionSpec = int | Literal["latest"]


@dataclass(frozen=True)
class LogRecord:
    key: bytes
    #: ``None`` is a tombstone.
    value: bytes | None


class RecordLog(Protocol):
    """Where the registry's records live; :class:`KafkaRecordLog` in production."""

    def read_all(self) -> list[LogRecord]:
        """Every record from the beginning of the log to its current end."""

    def append(self, records: Sequence[LogRecord]) -> None:
        """Write ``records`` in order; return only once all are durably acknowledged.

        Raises :class:`StoreError` when any was not acknowledged (some may
        have been written all the same).
        """

    def close(self) -> None: ...


# --------------------------------------------------------------------------
# the index
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one subject, as the topic holds it."""

    subject: str
    version: int
    schema_id: int
    schema: str
    schema_type: str = AVRO
    deleted: bool = False


@dataclass
class _StoredSchema:
    """What a global id stands for."""

    text: str
    schema_type: str
    identity: str
    #: Parsed Avro schema; ``None`` for other types and for text Avro refused.
    avro: AvroSchema | None


def _identity_of(text: str, schema_type: str) -> tuple[str, AvroSchema | None]:
    if schema_type == AVRO:
        try:
            parsed = parse_avro(text)
        except InvalidSchemaError:
            # Only possible for records some other writer put on the topic.
            logger.warning("a stored avro schema does not parse; it is kept but matched by its text only")
        else:
            return parsed.normalized, parsed
    return f"{schema_type}:{text}", None


class SchemaIndex:
    """In-memory view of the topic: subjects, versions, ids, levels.

    Pure: no I/O. Ids are taken from the records (never assigned here);
    ``max_id`` is the highest id ever seen, so the store never reuses one
    that the topic still shows.
    """

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, SchemaVersion]] = {}
        self._schemas: dict[int, _StoredSchema] = {}
        self._refs: dict[int, set[tuple[str, int]]] = {}
        self._ids_by_identity: dict[str, set[int]] = {}
        self._levels: dict[str | None, CompatibilityLevel] = {}
        self._raw_keys: dict[object, bytes] = {}
        self.max_id = 0
        self.records_applied = 0
        self.records_skipped = 0

    # -- applying records ----------------------------------------------------

    def apply(self, raw_key: bytes | None, raw_value: bytes | None) -> None:
        """Fold one topic record into the index (later records win, as in compaction)."""
        if raw_key is None:
            self.records_skipped += 1
            return
        try:
            key = decode_key(raw_key)
            if isinstance(key, SchemaKey):
                self._apply_schema(key, raw_key, raw_value)
            elif isinstance(key, ConfigKey):
                self._apply_config(key, raw_key, raw_value)
            elif isinstance(key, DeleteSubjectKey) and raw_value is not None:
                bound = SubjectVersionValue.decode(raw_value).version
                for v in list(self._versions.get(key.subject, {}).values()):
                    if v.version <= bound and not v.deleted:
                        self._put(replace(v, deleted=True))
            elif isinstance(key, ClearSubjectKey) and raw_value is not None:
                bound = SubjectVersionValue.decode(raw_value).version
                for v in list(self._versions.get(key.subject, {}).values()):
                    if v.version <= bound and v.deleted:
                        self._remove(key.subject, v.version)
            elif isinstance(key, IgnoredKey):
                self.records_skipped += 1
                return
        except (ValueError, KeyError, TypeError) as exc:
            self.records_skipped += 1
            logger.warning("skipping a malformed registry record: %s", exc)
            return
        self.records_applied += 1

    def _apply_schema(self, key: SchemaKey, raw_key: bytes, raw_value: bytes | None) -> None:
        if raw_value is None:
            self._remove(key.subject, key.version)
            self._raw_keys.pop(key, None)
            return
        value = SchemaValue.decode(raw_value)
        self._raw_keys[key] = raw_key
        self._put(
            SchemaVersion(
                subject=key.subject,
                version=key.version,
                schema_id=value.schema_id,
                schema=value.schema,
                schema_type=value.schema_type,
                deleted=value.deleted,
            )
        )

    def _apply_config(self, key: ConfigKey, raw_key: bytes, raw_value: bytes | None) -> None:
        level = ConfigValue.decode(raw_value).compatibility_level if raw_value is not None else None
        if level is None:
            self._levels.pop(key.subject, None)
            self._raw_keys.pop(key, None)
            return
        self._levels[key.subject] = CompatibilityLevel.parse(level)
        self._raw_keys[key] = raw_key

    def _put(self, version: SchemaVersion) -> None:
        if version.version in self._versions.get(version.subject, {}):
            self._remove(version.subject, version.version)
        self._versions.setdefault(version.subject, {})[version.version] = version
        stored = self._schemas.get(version.schema_id)
        if stored is None:
            identity, parsed = _identity_of(version.schema, version.schema_type)
            stored = _StoredSchema(version.schema, version.schema_type, identity, parsed)
            self._schemas[version.schema_id] = stored
            self._ids_by_identity.setdefault(identity, set()).add(version.schema_id)
        self._refs.setdefault(version.schema_id, set()).add((version.subject, version.version))
        self.max_id = max(self.max_id, version.schema_id)

    def _remove(self, subject: str, version: int) -> None:
        versions = self._versions.get(subject, {})
        old = versions.pop(version, None)
        if not versions:
            self._versions.pop(subject, None)
        if old is None:
            return
        refs = self._refs.get(old.schema_id, set())
        refs.discard((subject, version))
        if not refs:
            # No version refers to the id any more: it is no longer served,
            # but max_id keeps it from being handed out again.
            self._refs.pop(old.schema_id, None)
            stored = self._schemas.pop(old.schema_id)
            ids = self._ids_by_identity.get(stored.identity, set())
            ids.discard(old.schema_id)
            if not ids:
                self._ids_by_identity.pop(stored.identity, None)

    # -- queries ---------------------------------------------------------------

    @property
    def schema_count(self) -> int:
        """Distinct schema ids currently served."""
        return len(self._schemas)

    def raw_key(self, key: SchemaKey | ConfigKey) -> bytes:
        """The bytes to write for ``key``: the ones already on the topic, if any."""
        return self._raw_keys.get(key) or key.encode()

    def subjects(self, include_deleted: bool = False, deleted_only: bool = False) -> list[str]:
        out = []
        for subject, versions in self._versions.items():
            live = any(not v.deleted for v in versions.values())
            if deleted_only:
                if any(v.deleted for v in versions.values()):
                    out.append(subject)
            elif live or include_deleted:
                out.append(subject)
        return sorted(out)

    def versions(self, subject: str, include_deleted: bool = False) -> list[SchemaVersion]:
        """Versions of ``subject``, oldest first; soft-deleted ones only when asked."""
        versions = self._versions.get(subject, {})
        return [versions[n] for n in sorted(versions) if include_deleted or not versions[n].deleted]

    def has_subject(self, subject: str) -> bool:
        """Whether the subject has any version at all, soft-deleted included."""
        return subject in self._versions

    def get(self, subject: str, spec: VersionSpec, include_deleted: bool = False) -> SchemaVersion:
        """One version of a subject; 40401 / 40402 as Confluent answers them."""
        visible = self.versions(subject, include_deleted)
        if not visible:
            raise SubjectNotFoundError(subject)
        if spec == LATEST:
            return visible[-1]
        found = self._versions[subject].get(spec)
        if found is None or (found.deleted and not include_deleted):
            raise VersionNotFoundError(subject, spec)
        return found

    def max_version(self, subject: str) -> int:
        return max(self._versions.get(subject, {}) or [0])

    def schema_by_id(self, schema_id: int) -> _StoredSchema:
        stored = self._schemas.get(schema_id)
        if stored is None:
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return stored

    def versions_of_id(self, schema_id: int, include_deleted: bool = False) -> list[SchemaVersion]:
        self.schema_by_id(schema_id)
        out = [self._versions[s][v] for s, v in self._refs.get(schema_id, ())]
        return sorted(
            (v for v in out if include_deleted or not v.deleted), key=lambda v: (v.subject, v.version)
        )

    def id_for(self, schema: AvroSchema) -> int | None:
        """The id already given to this schema anywhere in the registry, if any."""
        ids = self._ids_by_identity.get(schema.normalized)
        return min(ids) if ids else None

    def find(self, subject: str, schema: AvroSchema, include_deleted: bool = False) -> SchemaVersion | None:
        """The newest version of ``subject`` that is this schema."""
        for v in reversed(self.versions(subject, include_deleted)):
            if self._schemas[v.schema_id].identity == schema.normalized:
                return v
        return None

    def avro_of(self, version: SchemaVersion) -> avro.schema.Schema:
        """The parsed Avro schema of a stored version, for compatibility checks."""
        stored = self._schemas[version.schema_id]
        if stored.avro is None:
            raise IncompatibleSchemaError(
                f"Subject '{version.subject}' version {version.version} is a {stored.schema_type} "
                "schema this registry cannot compare with Avro"
            )
        return stored.avro.parsed

    def subject_level(self, subject: str | None) -> CompatibilityLevel | None:
        """The level set for ``subject`` itself (``None``: set for the registry), if any."""
        return self._levels.get(subject)

    def global_level(self) -> CompatibilityLevel:
        return self._levels.get(None, DEFAULT_LEVEL)

    def level(self, subject: str) -> CompatibilityLevel:
        """The level that governs ``subject``: its own, else the global one."""
        return self._levels.get(subject) or self.global_level()


# --------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    schema_id: int
    version: int
    #: False when the schema was already a live version of the subject.
    created: bool


class SchemaStore:
    """The registry's operations, each one a validated write to the record log.

    Reads are answered from the index with no I/O. Writes are serialized by
    an asyncio lock and run the blocking log calls in a worker thread.
    """

    def __init__(self, log: RecordLog) -> None:
        self._log = log
        self._index = SchemaIndex()
        self._lock = asyncio.Lock()
        #: Highest id handed to a write, acknowledged or not (never reused).
        self._reserved_id = 0
        self._stale = False

    @property
    def index(self) -> SchemaIndex:
        return self._index

    async def start(self) -> None:
        """Read the whole topic and build the index; call once before serving."""
        async with self._lock:
            await self._reload()

    async def close(self) -> None:
        await asyncio.to_thread(self._log.close)

    async def _reload(self) -> None:
        started = time.monotonic()
        records = await asyncio.to_thread(self._log.read_all)
        index = SchemaIndex()
        for record in records:
            index.apply(record.key, record.value)
        self._index = index
        self._reserved_id = max(self._reserved_id, index.max_id)
        self._stale = False
        logger.info(
            "registry index rebuilt from %d records in %.2fs: %d subjects, %d schemas%s",
            len(records),
            time.monotonic() - started,
            len(index.subjects(include_deleted=True)),
            index.schema_count,
            f", {index.records_skipped} records skipped" if index.records_skipped else "",
        )

    async def _write(self, records: Sequence[LogRecord]) -> None:
        """Append records and apply them once acknowledged; the caller holds the lock."""
        try:
            await asyncio.to_thread(self._log.append, records)
        except StoreError:
            self._stale = True
            try:
                await self._reload()
            except StoreError:
                logger.warning("registry index could not be re-read after a failed write; retrying on the next write")
            raise
        for record in records:
            self._index.apply(record.key, record.value)

    async def _before_write(self) -> None:
        if self._stale:
            await self._reload()

    def _next_id(self) -> int:
        self._reserved_id = max(self._reserved_id, self._index.max_id) + 1
        return self._reserved_id

    # -- schemas ---------------------------------------------------------------

    async def register(self, subject: str, schema: AvroSchema) -> Registration:
        """Register ``schema`` under ``subject`` if the subject's level allows it.

        Idempotent: a schema that is already a live version of the subject
        returns that version's id and writes nothing. A schema known under
        any subject (or a soft-deleted version) keeps its global id.
        """
        async with self._lock:
            await self._before_write()
            index = self._index
            existing = index.find(subject, schema)
            if existing is not None:
                return Registration(existing.schema_id, existing.version, created=False)
            found = self._incompatibilities(subject, schema, index.versions(subject))
            if found:
                level = index.level(subject)
                raise IncompatibleSchemaError(describe_incompatibilities(subject, level, found))
            schema_id = index.id_for(schema)
            text = schema.text if schema_id is None else index.schema_by_id(schema_id).text
            if schema_id is None:
                schema_id = self._next_id()
            version = index.max_version(subject) + 1
            key = SchemaKey(subject, version)
            value = SchemaValue(subject, version, schema_id, text)
            await self._write([LogRecord(index.raw_key(key), value.encode())])
            logger.info("registered subject %s version %d as schema id %d", subject, version, schema_id)
            return Registration(schema_id, version, created=True)

    def lookup(self, subject: str, schema: AvroSchema, include_deleted: bool = False) -> SchemaVersion:
        """The version of ``subject`` that is ``schema``; 40401 or 40403 when there is none."""
        if not self._index.versions(subject, include_deleted):
            raise SubjectNotFoundError(subject)
        found = self._index.find(subject, schema, include_deleted)
        if found is None:
            raise SchemaNotFoundError("Schema not found")
        return found

    def check(self, subject: str, schema: AvroSchema, spec: VersionSpec | None = None) -> list[Incompatibility]:
        """What ``subject``'s level would refuse in ``schema``, without writing.

        With ``spec`` the schema is compared with that one version only;
        without, with the versions the level names (latest, or all).
        """
        if spec is None:
            return self._incompatibilities(subject, schema, self._index.versions(subject))
        if spec == LATEST and not self._index.versions(subject):
            return []  # nothing registered yet: compatible, as Confluent answers (checks before a first register)
        target = self._index.get(subject, spec)
        return self._incompatibilities(subject, schema, [target])

    def _incompatibilities(
        self, subject: str, schema: AvroSchema, versions: Sequence[SchemaVersion]
    ) -> list[Incompatibility]:
        level = self._index.level(subject)
        if level is CompatibilityLevel.NONE or not versions:
            return []
        if not level.transitive:
            versions = versions[-1:]
        existing = [(v.version, self._index.avro_of(v)) for v in versions]
        return check_compatibility(schema.parsed, existing, level)

    async def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft delete every live version (and the subject's level), or hard delete a soft-deleted subject.

        Returns the versions deleted. As in Confluent, a hard delete needs a
        soft delete first (40405), and a second soft delete is 40404.
        """
        async with self._lock:
            await self._before_write()
            index = self._index
            if not index.has_subject(subject):
                raise SubjectNotFoundError(subject)
            live = index.versions(subject)
            if permanent:
                if live:
                    raise SubjectNotSoftDeletedError(subject)
                doomed = index.versions(subject, include_deleted=True)
                records = [LogRecord(index.raw_key(SchemaKey(subject, v.version)), None) for v in doomed]
            else:
                if not live:
                    raise SubjectSoftDeletedError(subject)
                doomed = live
                records = [
                    LogRecord(index.raw_key(SchemaKey(subject, v.version)), soft_deleted(v).encode())
                    for v in doomed
                ]
                if index.subject_level(subject) is not None:
                    records.append(LogRecord(index.raw_key(ConfigKey(subject)), None))
            await self._write(records)
            logger.info(
                "%s deleted subject %s (%d versions)", "permanently" if permanent else "soft", subject, len(doomed)
            )
            return [v.version for v in doomed]

    async def delete_version(self, subject: str, spec: VersionSpec, permanent: bool = False) -> int:
        """Soft delete one live version, or hard delete a soft-deleted one; returns its number."""
        async with self._lock:
            await self._before_write()
            index = self._index
            if not index.has_subject(subject):
                raise SubjectNotFoundError(subject)
            target = index.get(subject, spec, include_deleted=permanent or spec != LATEST)
            key = index.raw_key(SchemaKey(subject, target.version))
            if permanent:
                if not target.deleted:
                    raise VersionNotSoftDeletedError(subject, target.version)
                record = LogRecord(key, None)
            else:
                if target.deleted:
                    raise VersionSoftDeletedError(subject, target.version)
                record = LogRecord(key, soft_deleted(target).encode())
            await self._write([record])
            logger.info(
                "%s deleted subject %s version %d",
                "permanently" if permanent else "soft",
                subject,
                target.version,
            )
            return target.version

    # -- compatibility levels --------------------------------------------------

    async def set_level(self, subject: str | None, level: CompatibilityLevel) -> CompatibilityLevel:
        """Set the subject's level (``None``: the global one)."""
        async with self._lock:
            await self._before_write()
            key = ConfigKey(subject)
            await self._write([LogRecord(self._index.raw_key(key), ConfigValue(level.value).encode())])
            logger.info("compatibility of %s set to %s", subject or "the registry", level.value)
            return level

    async def delete_level(self, subject: str | None) -> CompatibilityLevel:
        """Remove a subject's own level (or reset the global one); returns the level it had."""
        async with self._lock:
            await self._before_write()
            index = self._index
            if subject is None:
                previous = index.global_level()
                if index.subject_level(None) is None:
                    return previous
            else:
                own = index.subject_level(subject)
                if own is None:
                    if not index.has_subject(subject):
                        raise SubjectNotFoundError(subject)
                    raise SubjectConfigNotFoundError(subject)
                previous = own
            await self._write([LogRecord(index.raw_key(ConfigKey(subject)), None)])
            logger.info("compatibility of %s reset", subject or "the registry")
            return previous


def soft_deleted(version: SchemaVersion) -> SchemaValue:
    """The value that soft-deletes ``version``."""
    return SchemaValue(
        version.subject, version.version, version.schema_id, version.schema, True, version.schema_type
    )


# --------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------


class KafkaRecordLog:
    """The registry's compacted, single-partition topic.

    ``ensure_topic`` creates it when absent (1 partition,
    ``cleanup.policy=compact``, replication factor min(3, brokers)) and
    refuses one that is not compacted or has more than one partition, as
    Confluent's server does: either would lose or reorder schemas.
    """

    def __init__(self, client_config: dict[str, str], topic: str, *, timeout: float = 30.0) -> None:
        # librdkafka's own log lines go through Python logging, not raw stderr.
        self._conf: dict[str, object] = {**client_config, "logger": logging.getLogger("psmesh.registry.kafka")}
        self.topic = topic
        self._timeout = timeout
        self._producer: Producer | None = None

    def ensure_topic(self) -> None:
        admin = AdminClient(self._conf)
        try:
            metadata = admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise StoreError(f"cannot reach Kafka at {self._conf.get('bootstrap.servers')}: {exc}") from exc
        existing = metadata.topics.get(self.topic)
        if existing is not None and existing.error is None:
            self._check_topic(admin, len(existing.partitions))
        else:
            self._create_topic(admin, len(metadata.brokers))
        # The idempotent producer needs a producer id from the broker, which
        # can take seconds on a fresh cluster: ask for it now, not on the
        # first registration.
        self._new_producer()

    def _create_topic(self, admin: AdminClient, brokers: int) -> None:
        replication = min(3, brokers) or 1
        new = NewTopic(
            self.topic,
            num_partitions=1,
            replication_factor=replication,
            config={"cleanup.policy": "compact"},
        )
        futures = admin.create_topics([new], operation_timeout=self._timeout, request_timeout=self._timeout)
        try:
            futures[self.topic].result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StoreError(f"cannot create the registry topic {self.topic}: {exc}") from exc
        else:
            logger.info(
                "created registry topic %s (compacted, 1 partition, replication factor %d)",
                self.topic,
                replication,
            )

    def _check_topic(self, admin: AdminClient, partitions: int) -> None:
        if partitions != 1:
            raise StoreError(
                f"the registry topic {self.topic} has {partitions} partitions; it must have exactly 1"
            )
        resource = ConfigResource(ResourceType.TOPIC, self.topic)
        try:
            configs = admin.describe_configs([resource], request_timeout=self._timeout)[resource].result()
        except KafkaException as exc:
            raise StoreError(f"cannot describe the registry topic {self.topic}: {exc}") from exc
        policy = configs.get("cleanup.policy")
        if policy is None or "compact" not in policy.value.split(","):
            raise StoreError(
                f"the registry topic {self.topic} has cleanup.policy={policy.value if policy else None}; "
                "it must be compact, or old schemas would be deleted"
            )

    def read_all(self) -> list[LogRecord]:
        consumer = Consumer(
            {
                **self._conf,
                # assign() reads without joining a group; librdkafka still wants an id.
                "group.id": f"psmesh-registry-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            return self._read(consumer)
        except KafkaException as exc:
            raise StoreError(f"cannot read the registry topic {self.topic}: {exc}") from exc
        finally:
            consumer.close()

    def _read(self, consumer: Consumer) -> list[LogRecord]:
        partition = TopicPartition(self.topic, 0)
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                low, high = consumer.get_watermark_offsets(partition, timeout=self._timeout, cached=False)
                break
            except KafkaException as exc:
                # A topic created a moment ago may not have a leader yet.
                if time.monotonic() > deadline:
                    raise
                logger.debug("registry topic not readable yet: %s", exc)
                time.sleep(0.2)
        records: list[LogRecord] = []
        if high <= low:
            return records
        consumer.assign([TopicPartition(self.topic, 0, low)])
        stall_deadline = time.monotonic() + self._timeout
        while True:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() > stall_deadline:
                    raise StoreError(
                        f"reading the registry topic {self.topic} stalled before offset {high}"
                    )
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            stall_deadline = time.monotonic() + self._timeout
            if msg.key() is not None:
                records.append(LogRecord(msg.key(), msg.value()))
            if msg.offset() >= high - 1:
                return records

    def append(self, records: Sequence[LogRecord]) -> None:
        producer = self._producer or self._new_producer()
        failures: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                failures.append(str(err))

        try:
            for record in records:
                producer.produce(self.topic, key=record.key, value=record.value, partition=0, on_delivery=on_delivery)
            remaining = producer.flush(self._timeout + 5)
        except (KafkaException, BufferError) as exc:
            self._drop_producer()
            raise StoreError(f"cannot write to the registry topic {self.topic}: {exc}") from exc
        if remaining:
            self._drop_producer()
            raise StoreError(f"writing to the registry topic {self.topic} timed out")
        if failures:
            self._drop_producer()
            raise StoreError(f"Kafka refused a write to the registry topic {self.topic}: {failures[0]}")

    def _new_producer(self) -> Producer:
        self._producer = Producer(
            {
                **self._conf,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": int(self._timeout * 1000),
            }
        )
        return self._producer

    def _drop_producer(self) -> None:
        # After a failed delivery an idempotent producer may be in a fatal
        # state; the next write starts a fresh one.
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(0)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self._timeout)
            self._producer = None


__all__ = [
    "LATEST",
    "KafkaRecordLog",
    "LogRecord",
    "RecordLog",
    "Registration",
    "SchemaIndex",
    "SchemaStore",
    "SchemaVersion",
    "VersionSpec",
]
