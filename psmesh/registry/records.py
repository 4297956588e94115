"""Confluent's record format for the registry's compacted topic.

The registry's whole state is a compacted Kafka topic written in exactly the
format Confluent Schema Registry uses, so the topic can be handed to (or
taken from) a Confluent server unchanged:

- a schema version: key ``{"keytype":"SCHEMA","subject":s,"version":v,"magic":1}``,
  value ``{"subject":s,"version":v,"id":n,"schema":text,"deleted":bool}``
  (plus ``"schemaType"`` when it is not AVRO); a soft delete rewrites the
  value with ``"deleted":true``, a hard delete is a tombstone on the key;
- a compatibility level: key ``{"keytype":"CONFIG","subject":s|null,"magic":0}``,
  value ``{"compatibilityLevel":level}``; deleting it is a tombstone.

Keys are compacted byte for byte, so they are serialized the way Confluent's
Jackson serializer writes them (field order above, no whitespace); the store
also reuses the exact bytes it read for a key when it rewrites or tombstones
it. Key types this registry does not write (``DELETE_SUBJECT`` and
``CLEAR_SUBJECT`` from older Confluent servers) are still understood when
read; ``MODE``, ``NOOP`` and unknown ones are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Union

from psmesh.registry.canonical import AVRO


def _dump(obj: dict[str, object]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class SchemaKey:
    subject: str
    version: int

    def encode(self) -> bytes:
        return _dump({"keytype": "SCHEMA", "subject": self.subject, "version": self.version, "magic": 1})


@dataclass(frozen=True)
class ConfigKey:
    #: ``None`` is the registry-wide (global) config.
    subject: str | None

    def encode(self) -> bytes:
        return _dump({"keytype": "CONFIG", "subject": self.subject, "magic": 0})


@dataclass(frozen=True)
class DeleteSubjectKey:
    """Older Confluent servers: every version up to ``value.version`` is soft deleted."""

    subject: str


@dataclass(frozen=True)
class ClearSubjectKey:
    """Older Confluent servers: every soft-deleted version up to ``value.version`` is gone."""

    subject: str


@dataclass(frozen=True)
class IgnoredKey:
    """A record this registry has no use for (MODE, NOOP, CONTEXT, unknown)."""

    keytype: str


Key = Union[SchemaKey, ConfigKey, DeleteSubjectKey, ClearSubjectKey, IgnoredKey]


@dataclass(frozen=True)
class SchemaValue:
    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False
    schema_type: str = AVRO

    def encode(self) -> bytes:
        body: dict[str, object] = {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
        }
        if self.schema_type != AVRO:
            body["schemaType"] = self.schema_type
        body["schema"] = self.schema
        body["deleted"] = self.deleted
        return _dump(body)

    @classmethod
    def decode(cls, raw: bytes) -> SchemaValue:
        body = json.loads(raw)
        return cls(
            subject=body["subject"],
            version=int(body["version"]),
            schema_id=int(body["id"]),
            schema=body["schema"],
            deleted=bool(body.get("deleted", False)),
            schema_type=body.get("schemaType") or AVRO,
        )


@dataclass(frozen=True)
class ConfigValue:
    #: ``None`` when a Confluent server stored other settings but no level.
    compatibility_level: str | None

    def encode(self) -> bytes:
        return _dump({"compatibilityLevel": self.compatibility_level})

    @classmethod
    def decode(cls, raw: bytes) -> ConfigValue:
        body = json.loads(raw)
        return cls(compatibility_level=body.get("compatibilityLevel"))


@dataclass(frozen=True)
class SubjectVersionValue:
    """Value of DELETE_SUBJECT / CLEAR_SUBJECT records: the subject's version bound."""

    subject: str
    version: int

    @classmethod
    def decode(cls, raw: bytes) -> SubjectVersionValue:
        body = json.loads(raw)
        return cls(subject=body["subject"], version=int(body["version"]))


def decode_key(raw: bytes) -> Key:
    """Parse a record key; raises ``ValueError`` (or ``KeyError``) on a malformed one."""
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("registry record key is not a JSON object")
    keytype = body.get("keytype")
    if keytype == "SCHEMA":
        return SchemaKey(subject=body["subject"], version=int(body["version"]))
    if keytype == "CONFIG":
        return ConfigKey(subject=body.get("subject"))
    if keytype == "DELETE_SUBJECT":
        return DeleteSubjectKey(subject=body["subject"])
    if keytype == "CLEAR_SUBJECT":
        return ClearSubjectKey(subject=body["subject"])
    return IgnoredKey(keytype=str(keytype))
