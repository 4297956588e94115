"""Compare a topology with a live cluster and schema registry: what ``apply`` would do.

``observe`` reads the cluster (topics, partition counts, replication factors,
the managed topic configs) and the registry (the latest version of every
subject the topology declares a schema file for). ``plan_changes`` is a pure
function of the topology and that observation, so it is unit-tested without
a server. A plan holds actions ``apply`` can carry out safely (create a topic,
add partitions, set a managed config, register a schema) and warnings for
what it must not do: remove partitions, change a replication factor (a
partition reassignment), delete a topic that is not in the file.

Managed configs are ``cleanup.policy`` always and ``retention.ms`` when the
topic (or ``defaults``) sets it; every other topic config is left alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from psmesh.topology.exceptions import ClusterError
from psmesh.topology.model import Topic, Topology

logger = logging.getLogger(__name__)

MANAGED_CONFIGS = ("cleanup.policy", "retention.ms")
#: Error code of the Confluent registry API for "schema not found" (lookup of an unregistered schema).
SCHEMA_NOT_FOUND = 40403


@dataclass(frozen=True)
class LiveTopic:
    name: str
    partitions: int
    replication_factor: int
    #: Current values of MANAGED_CONFIGS.
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveSubject:
    subject: str
    version: int
    schema_str: str
    #: Version under which the declared file is registered when it is not
    #: textually the latest (the registry's own lookup), else None.
    declared_version: int | None = None


@dataclass(frozen=True)
class ClusterState:
    brokers: int
    topics: Mapping[str, LiveTopic]
    #: None when the registry was not read (see registry_problem).
    subjects: Mapping[str, LiveSubject] | None = field(default_factory=dict)
    registry_problem: str | None = None


@dataclass(frozen=True)
class DeclaredSchema:
    topic: str
    subject: str
    path: str
    schema_str: str


@dataclass(frozen=True)
class CreateTopic:
    topic: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]

    def __str__(self) -> str:
        config = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return (
            f"create topic {self.topic}: {self.partitions} partitions, "
            f"replication factor {self.replication_factor}, {config}"
        )


@dataclass(frozen=True)
class AddPartitions:
    topic: str
    current: int
    target: int

    def __str__(self) -> str:
        return f"add partitions to {self.topic}: {self.current} -> {self.target}"


@dataclass(frozen=True)
class AlterTopicConfig:
    topic: str
    #: (config name, live value or None, new value)
    changes: tuple[tuple[str, str | None, str], ...]

    def __str__(self) -> str:
        changes = ", ".join(f"{k} {old if old is not None else '(unset)'} -> {new}" for k, old, new in self.changes)
        return f"alter config of {self.topic}: {changes}"


@dataclass(frozen=True)
class RegisterSchema:
    subject: str
    path: str
    schema_str: str
    reason: str

    def __str__(self) -> str:
        return f"register schema {self.subject} from {self.path} ({self.reason})"


Action = CreateTopic | AddPartitions | AlterTopicConfig | RegisterSchema


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    warnings: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """Nothing to apply (warnings may remain: they are never applied)."""
        return not self.actions

    def lines(self) -> list[str]:
        out = [f"+ {a}" if isinstance(a, (CreateTopic, RegisterSchema)) else f"~ {a}" for a in self.actions]
        out += [f"! warning: {w}" for w in self.warnings]
        out.append(
            "nothing to do" if self.empty else f"{len(self.actions)} action(s), {len(self.warnings)} warning(s)"
        )
        return out


def declared_schemas(topology: Topology) -> list[DeclaredSchema]:
    """The schema files the topology declares, read from disk."""
    out = []
    for topic in topology.topics:
        for subject, relative in topic.schema_files():
            text = topology.schema_path(relative).read_text(encoding="utf-8")
            out.append(DeclaredSchema(topic.name, subject, relative, text))
    return out


def same_schema(a: str, b: str) -> bool:
    """Equal as Avro JSON: key order, whitespace and ``{"type": "string"}`` vs ``"string"`` do not count."""
    try:
        return _normal(json.loads(a)) == _normal(json.loads(b))
    except json.JSONDecodeError:
        return a == b


def _normal(node: Any) -> Any:
    if isinstance(node, dict):
        if set(node) == {"type"} and isinstance(node["type"], str):
            return node["type"]
        return {k: _normal(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_normal(v) for v in node]
    return node


def normal_config(name: str, value: str | None) -> str | None:
    """Kafka reports ``cleanup.policy`` in the order it was set; compare it as a set."""
    if value is None:
        return None
    if name == "cleanup.policy":
        return ",".join(sorted(p.strip() for p in value.split(",") if p.strip()))
    return value.strip()


def plan_changes(topology: Topology, state: ClusterState, cluster: str | None = None, *,
                 repartition_compacted: bool = False) -> Plan:
    """What it takes to bring the cluster to the topology, and what cannot be done safely.

    Partitions are added to a compacted topic only with ``repartition_compacted`` (see :func:`_topic_warnings`)."""
    actions: list[Action] = []
    warnings: list[str] = []
    capped: list[tuple[str, int]] = []
    for topic in topology.topics:
        wanted_rf = topology.replication_factor(topic, cluster)
        rf = min(wanted_rf, state.brokers) if state.brokers > 0 else wanted_rf
        live = state.topics.get(topic.name)
        if live is None:
            if rf < wanted_rf:
                capped.append((topic.name, wanted_rf))
            actions.append(CreateTopic(topic.name, topic.partitions, rf, dict(topic.topic_config())))
            continue
        actions.extend(_topic_changes(topic, live, repartition_compacted))
        warnings.extend(_topic_warnings(topic, live, rf, wanted_rf, repartition_compacted))
    if capped:
        asked = max(w for _, w in capped)
        warnings.append(
            f"the cluster has {state.brokers} broker(s): replication factor capped to {state.brokers} "
            f"for {len(capped)} new topic(s) (topology asks for up to {asked})"
        )
    declared = {t.name for t in topology.topics}
    for name in sorted(state.topics):
        if name not in declared and not topology.is_unmanaged(name):
            warnings.append(f"topic {name} is in the cluster but not in the topology: apply never deletes topics")
    schema_actions, schema_warnings = _schema_changes(declared_schemas(topology), state)
    return Plan(tuple(actions + schema_actions), tuple(warnings + schema_warnings))


def _topic_changes(topic: Topic, live: LiveTopic, repartition_compacted: bool) -> list[Action]:
    actions: list[Action] = []
    if topic.partitions > live.partitions and (repartition_compacted or "compact" not in topic.cleanup_policy):
        actions.append(AddPartitions(topic.name, live.partitions, topic.partitions))
    changes = tuple(
        (name, live.config.get(name), value)
        for name, value in topic.topic_config().items()
        if normal_config(name, live.config.get(name)) != normal_config(name, value)
    )
    if changes:
        actions.append(AlterTopicConfig(topic.name, changes))
    return actions


def _topic_warnings(topic: Topic, live: LiveTopic, rf: int, wanted_rf: int, repartition_compacted: bool) -> list[str]:
    warnings = []
    if topic.partitions > live.partitions:
        if "compact" in topic.cleanup_policy and not repartition_compacted:
            warnings.append(
                f"topic {topic.name} has {live.partitions} partitions, the topology asks for {topic.partitions}: "
                "it is compacted, and more partitions send a key's new records to another partition than its old "
                "ones, which compaction then never removes (a rebuild would read a key's versions out of order); "
                "left as is. To repartition, create a new topic and republish into it, or, on a topic whose data "
                "you will rebuild, apply --repartition-compacted")
        else:
            warnings.append(
                f"topic {topic.name}: adding partitions sends a key's later records to another partition than its "
                "earlier ones; a consumer may read them out of order around the change")
    if topic.partitions < live.partitions:
        warnings.append(
            f"topic {topic.name} has {live.partitions} partitions, the topology asks for {topic.partitions}: "
            "Kafka cannot remove partitions; left as is"
        )
    if live.replication_factor != rf:
        capped = f" (capped from {wanted_rf} to the live brokers)" if rf != wanted_rf else ""
        warnings.append(
            f"topic {topic.name} has replication factor {live.replication_factor}, the topology asks for {rf}{capped}: "
            "changing it needs a partition reassignment (kafka-reassign-partitions.sh); left as is"
        )
    return warnings


def _schema_changes(declared: list[DeclaredSchema], state: ClusterState) -> tuple[list[Action], list[str]]:
    if not declared:
        return [], []
    if state.subjects is None:
        return [], [f"schema registry not read ({state.registry_problem}): {len(declared)} schema subject(s) not checked"]
    actions: list[Action] = []
    warnings: list[str] = []
    for schema in declared:
        live = state.subjects.get(schema.subject)
        if live is None:
            actions.append(RegisterSchema(schema.subject, schema.path, schema.schema_str, "new subject"))
        elif same_schema(live.schema_str, schema.schema_str) or live.declared_version == live.version:
            continue
        elif live.declared_version is not None:
            warnings.append(
                f"subject {schema.subject}: {schema.path} is version {live.declared_version} but the latest is "
                f"version {live.version}; registering it again would not make it the latest; left as is"
            )
        else:
            actions.append(
                RegisterSchema(schema.subject, schema.path, schema.schema_str, f"differs from latest version {live.version}")
            )
    return actions, warnings


def observe(
    topology: Topology,
    admin: AdminClient,
    registry: SchemaRegistryClient | None,
    timeout: float = 15.0,
) -> ClusterState:
    """Read what the plan needs from the cluster and, when the topology declares schema files, the registry.

    Raises ClusterError when Kafka cannot be read; a registry that cannot be
    read is recorded in ``registry_problem`` (the topic part of a plan is
    still useful).
    """
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ClusterError(f"cannot read the cluster's topics: {_kafka_message(exc)}") from exc
    declared = {t.name for t in topology.topics}
    live: dict[str, LiveTopic] = {}
    configs = _describe_configs(admin, [n for n in metadata.topics if n in declared], timeout)
    for name, meta in metadata.topics.items():
        if meta.error is not None:
            continue
        partitions = meta.partitions
        rf = len(next(iter(partitions.values())).replicas) if partitions else 0
        live[name] = LiveTopic(name, len(partitions), rf, configs.get(name, {}))
    state = ClusterState(brokers=len(metadata.brokers), topics=live)
    schemas = declared_schemas(topology)
    if not schemas:
        return state
    if registry is None:
        return ClusterState(state.brokers, state.topics, None, "no registry URL given")
    try:
        subjects = _observe_subjects(registry, schemas)
    except Exception as exc:  # noqa: BLE001 - the client raises SchemaRegistryError or its HTTP library's errors
        logger.debug("schema registry not readable", exc_info=True)
        return ClusterState(state.brokers, state.topics, None, f"{type(exc).__name__}: {exc}")
    return ClusterState(state.brokers, state.topics, subjects)


def _describe_configs(admin: AdminClient, names: list[str], timeout: float) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names], request_timeout=timeout)
    out: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        try:
            entries = future.result()
        except KafkaException as exc:
            raise ClusterError(f"cannot read the configs of topic {resource.name}: {_kafka_message(exc)}") from exc
        out[resource.name] = {k: e.value for k, e in entries.items() if k in MANAGED_CONFIGS and e.value is not None}
    return out


def _kafka_message(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def _observe_subjects(registry: SchemaRegistryClient, schemas: list[DeclaredSchema]) -> dict[str, LiveSubject]:
    # the client caches "latest version" answers for its lifetime; a plan must see the registry as it is now
    registry.clear_latest_caches()
    present = set(registry.get_subjects())
    out: dict[str, LiveSubject] = {}
    for schema in schemas:
        if schema.subject not in present:
            continue
        latest = registry.get_latest_version(schema.subject)
        live_str = latest.schema.schema_str
        declared_version = None
        if not same_schema(live_str, schema.schema_str):
            declared_version = _registered_version(registry, schema)
        out[schema.subject] = LiveSubject(schema.subject, latest.version, live_str, declared_version)
    return out


def _registered_version(registry: SchemaRegistryClient, schema: DeclaredSchema) -> int | None:
    """The version under which the registry holds this exact schema, by its own canonical comparison."""
    try:
        return registry.lookup_schema(schema.subject, Schema(schema.schema_str, "AVRO")).version
    except SchemaRegistryError as exc:
        if exc.error_code == SCHEMA_NOT_FOUND or exc.http_status_code == 404:
            return None
        raise
