"""Carry out a plan: create topics, add partitions, set managed configs, register schemas.

Idempotent: every action is computed from a fresh observation, a topic that
appeared meanwhile counts as created, and once ``apply_plan`` returns the
created topics and partitions are visible in the cluster's metadata, so an
immediate second ``plan`` is empty. Nothing is ever deleted, partitions are
never removed and replication factors are never changed (see ``plan``).
Each action succeeds or fails on its own; failures are reported, not raised.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from psmesh.topology.model import Topology
from psmesh.topology.plan import (
    AddPartitions,
    AlterTopicConfig,
    CreateTopic,
    Plan,
    RegisterSchema,
    observe,
    plan_changes,
)

logger = logging.getLogger(__name__)


@dataclass
class ApplyResult:
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def apply_topology(
    topology: Topology,
    admin: AdminClient,
    registry: SchemaRegistryClient | None,
    cluster: str | None = None,
    timeout: float = 30.0,
    *,
    repartition_compacted: bool = False,
) -> tuple[Plan, ApplyResult]:
    """Observe, plan and apply; returns the plan that was applied and what happened.

    Declared schema files that could not be checked because the registry was
    not readable count as a failure: the topology is not fully applied.
    Raises ClusterError when Kafka cannot be read.
    """
    state = observe(topology, admin, registry, timeout)
    plan = plan_changes(topology, state, cluster, repartition_compacted=repartition_compacted)
    result = apply_plan(plan, admin, registry, timeout)
    if state.subjects is None:
        result.failed.append(f"schemas not checked: the schema registry was not read ({state.registry_problem})")
    return plan, result


def apply_plan(
    plan: Plan, admin: AdminClient, registry: SchemaRegistryClient | None, timeout: float = 30.0
) -> ApplyResult:
    result = ApplyResult()
    creates = [a for a in plan.actions if isinstance(a, CreateTopic)]
    additions = [a for a in plan.actions if isinstance(a, AddPartitions)]
    alters = [a for a in plan.actions if isinstance(a, AlterTopicConfig)]
    registers = [a for a in plan.actions if isinstance(a, RegisterSchema)]
    expected: dict[str, int] = {}
    if creates:
        expected |= _create_topics(admin, creates, timeout, result)
    if additions:
        expected |= _add_partitions(admin, additions, timeout, result)
    if expected:
        _await_metadata(admin, expected, timeout, result)
    if alters:
        _alter_configs(admin, alters, timeout, result)
    for action in registers:
        _register(registry, action, result)
    return result


def _create_topics(admin: AdminClient, actions: list[CreateTopic], timeout: float, result: ApplyResult) -> dict[str, int]:
    """Create the topics; returns {topic: partitions} of those created."""
    new = [NewTopic(a.topic, a.partitions, a.replication_factor, config=dict(a.config)) for a in actions]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    created = {}
    for action in actions:
        try:
            futures[action.topic].result()
            created[action.topic] = action.partitions
            result.done.append(f"created topic {action.topic} ({action.partitions} partitions, replication factor {action.replication_factor})")
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                # created by someone else since we looked: the next plan compares it
                result.done.append(f"topic {action.topic} already existed")
            else:
                result.failed.append(f"create topic {action.topic}: {error.str()}")
    return created


def _add_partitions(admin: AdminClient, actions: list[AddPartitions], timeout: float, result: ApplyResult) -> dict[str, int]:
    """Grow the topics; returns {topic: partitions} of those grown."""
    futures = admin.create_partitions(
        [NewPartitions(a.topic, a.target) for a in actions], operation_timeout=timeout, request_timeout=timeout
    )
    grown = {}
    for action in actions:
        try:
            futures[action.topic].result()
            grown[action.topic] = action.target
            result.done.append(f"added partitions to {action.topic}: {action.current} -> {action.target}")
        except KafkaException as exc:
            result.failed.append(f"add partitions to {action.topic}: {exc.args[0].str()}")
    return grown


def _alter_configs(admin: AdminClient, actions: list[AlterTopicConfig], timeout: float, result: ApplyResult) -> None:
    # Incremental SET touches only the managed keys; the legacy AlterConfigs
    # would reset every config it is not given to the broker default.
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            a.topic,
            incremental_configs=[
                ConfigEntry(name, new, incremental_operation=AlterConfigOpType.SET) for name, _, new in a.changes
            ],
        )
        for a in actions
    ]
    futures = admin.incremental_alter_configs(resources, request_timeout=timeout)
    by_topic = {resource.name: future for resource, future in futures.items()}
    for action in actions:
        try:
            by_topic[action.topic].result()
            result.done.append(f"altered config of {action.topic}: " + ", ".join(f"{k}={v}" for k, _, v in action.changes))
        except KafkaException as exc:
            result.failed.append(f"alter config of {action.topic}: {exc.args[0].str()}")


def _register(registry: SchemaRegistryClient | None, action: RegisterSchema, result: ApplyResult) -> None:
    if registry is None:
        result.failed.append(f"register schema {action.subject}: no schema registry")
        return
    try:
        schema_id = registry.register_schema(action.subject, Schema(action.schema_str, "AVRO"))
        result.done.append(f"registered schema {action.subject} from {action.path} (id {schema_id})")
    except SchemaRegistryError as exc:
        # e.g. 409: refused by the subject's compatibility rule
        result.failed.append(f"register schema {action.subject} from {action.path}: {exc}")


def _await_metadata(admin: AdminClient, expected: dict[str, int], timeout: float, result: ApplyResult) -> None:
    """Wait until the created/grown topics show their partitions in metadata, so a re-plan sees them."""
    deadline = time.monotonic() + timeout
    pending = dict(expected)
    while pending and time.monotonic() < deadline:
        try:
            topics = admin.list_topics(timeout=max(1.0, deadline - time.monotonic())).topics
        except KafkaException:
            logger.debug("metadata not readable yet", exc_info=True)
            topics = {}
        for name, partitions in list(pending.items()):
            meta = topics.get(name)
            if meta is not None and meta.error is None and len(meta.partitions) >= partitions:
                del pending[name]
        if pending:
            time.sleep(0.2)
    for name, partitions in pending.items():
        result.failed.append(f"topic {name} did not show {partitions} partitions in metadata within {timeout:.0f}s")
