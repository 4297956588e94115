"""``psmesh topology plan/apply`` against the real Kafka and schema registry of the test stack.

Each test works on topics under a prefix of its own (``it_<uuid>.``) and
deletes them afterwards; other topics in the cluster show up only as
"not in the topology" warnings and are never touched.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from confluent_kafka.schema_registry import SchemaRegistryClient

from psmesh.topology import load_topology
from psmesh.topology.cli import topology as topology_cli
from psmesh.topology.plan import AddPartitions, AlterTopicConfig, observe, plan_changes

pytestmark = pytest.mark.integration

#: No schema files in these topologies, so the registry is never contacted.
NO_REGISTRY = "http://127.0.0.1:9"

SCHEMA_V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "psmesh.test",
    "fields": [{"name": "order_id", "type": "long"}, {"name": "amount", "type": "string"}],
}
SCHEMA_V2 = dict(SCHEMA_V1, fields=[*SCHEMA_V1["fields"], {"name": "note", "type": ["null", "string"], "default": None}])


@pytest.fixture
def prefix() -> str:
    return f"it_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def admin(kafka_bootstrap: str, prefix: str):
    client = AdminClient({"bootstrap.servers": kafka_bootstrap})
    yield client
    mine = [t for t in client.list_topics(timeout=10).topics if t.startswith(f"{prefix}.")]
    if mine:
        for future in client.delete_topics(mine, operation_timeout=30).values():
            future.result()


def _topology(prefix: str, orders_partitions: int = 2, events_retention_ms: int = 3_600_000, value_schema: str | None = None):
    orders = {
        "name": f"{prefix}.orders",
        "owner": "shop",
        "partitions": orders_partitions,
        "cleanup_policy": "compact",
        "key": ["order_id"],
        "consumers": ["order_totals"],
        "description": "Orders, latest state per order.",
    }
    if value_schema is not None:
        orders["value_schema"] = value_schema
    return {
        "version": 1,
        "defaults": {"partitions": 1, "replication_factor": 3},
        "clusters": {"local": {"replication_factor": 1}},
        "domains": [{"name": "shop", "description": "Test shop.", "owner": {"team": "QA", "email": "qa@firm.example"}}],
        "topics": [
            orders,
            {
                "name": f"{prefix}.order_totals",
                "owner": "shop",
                "cleanup_policy": "delete",
                "retention_ms": events_retention_ms,
                "key": ["order_id"],
                "description": "Totals per order.",
            },
        ],
        "processors": [
            {
                "name": "order_totals",
                "domain": "shop",
                "inputs": [f"{prefix}.orders"],
                "outputs": [f"{prefix}.order_totals"],
            }
        ],
    }


def _write(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _cli(*args: str):
    return CliRunner().invoke(topology_cli, list(args))


def _describe(admin: AdminClient, topic: str) -> tuple[int, int, dict[str, str]]:
    """(partitions, replication factor, cleanup.policy and retention.ms) as the broker reports them."""
    meta = admin.list_topics(topic=topic, timeout=10).topics[topic]
    assert meta.error is None, meta.error
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    entries = future.result()
    config = {k: entries[k].value for k in ("cleanup.policy", "retention.ms")}
    return len(meta.partitions), len(meta.partitions[0].replicas), config


def test_apply_creates_the_topics_and_a_second_apply_has_nothing_to_do(kafka_bootstrap, admin, prefix, tmp_path):
    path = _write(tmp_path / "topology.yaml", _topology(prefix))
    common = ["--file", str(path), "--bootstrap-servers", kafka_bootstrap, "--registry-url", NO_REGISTRY, "--cluster", "local"]

    plan = _cli("plan", *common)
    assert plan.exit_code == 0, plan.output
    assert f"+ create topic {prefix}.orders: 2 partitions, replication factor 1, cleanup.policy=compact" in plan.output

    first = _cli("apply", *common)
    assert first.exit_code == 0, first.output
    assert f"done: created topic {prefix}.orders (2 partitions, replication factor 1)" in first.output
    assert f"done: created topic {prefix}.order_totals (1 partitions, replication factor 1)" in first.output

    assert _describe(admin, f"{prefix}.orders") == (2, 1, {"cleanup.policy": "compact", "retention.ms": "604800000"})
    assert _describe(admin, f"{prefix}.order_totals") == (1, 1, {"cleanup.policy": "delete", "retention.ms": "3600000"})

    second = _cli("apply", *common)
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.output
    assert "done:" not in second.output
    topology = load_topology(path)
    assert plan_changes(topology, observe(topology, admin, None), "local").actions == ()


def test_more_partitions_and_a_new_retention_are_planned_then_applied(kafka_bootstrap, admin, prefix, tmp_path):
    path = tmp_path / "topology.yaml"
    common = ["--file", str(path), "--bootstrap-servers", kafka_bootstrap, "--registry-url", NO_REGISTRY, "--cluster", "local"]
    _write(path, _topology(prefix))
    assert _cli("apply", *common).exit_code == 0

    _write(path, _topology(prefix, orders_partitions=4, events_retention_ms=7_200_000))
    topology = load_topology(path)
    refused = plan_changes(topology, observe(topology, admin, None), "local")
    assert not any(isinstance(a, AddPartitions) for a in refused.actions)  # compacted: only when asked for
    assert any(f"topic {prefix}.orders has 2 partitions, the topology asks for 4: it is compacted" in w
               for w in refused.warnings)
    common.append("--repartition-compacted")
    actions = plan_changes(topology, observe(topology, admin, None), "local", repartition_compacted=True).actions
    assert set(actions) == {
        AddPartitions(f"{prefix}.orders", 2, 4),
        AlterTopicConfig(f"{prefix}.order_totals", (("retention.ms", "3600000", "7200000"),)),
    }
    plan = _cli("plan", *common)
    assert f"~ add partitions to {prefix}.orders: 2 -> 4" in plan.output
    assert f"~ alter config of {prefix}.order_totals: retention.ms 3600000 -> 7200000" in plan.output

    applied = _cli("apply", *common)
    assert applied.exit_code == 0, applied.output
    assert f"done: added partitions to {prefix}.orders: 2 -> 4" in applied.output
    assert _describe(admin, f"{prefix}.orders")[0] == 4
    assert _describe(admin, f"{prefix}.order_totals")[2]["retention.ms"] == "7200000"
    assert "nothing to do" in _cli("apply", *common).output


def test_fewer_partitions_in_the_file_are_only_warned_about(kafka_bootstrap, admin, prefix, tmp_path):
    path = tmp_path / "topology.yaml"
    common = ["--file", str(path), "--bootstrap-servers", kafka_bootstrap, "--registry-url", NO_REGISTRY, "--cluster", "local"]
    _write(path, _topology(prefix, orders_partitions=3))
    assert _cli("apply", *common).exit_code == 0

    _write(path, _topology(prefix, orders_partitions=1))
    result = _cli("apply", *common)
    assert result.exit_code == 0, result.output
    assert f"{prefix}.orders has 3 partitions, the topology asks for 1: Kafka cannot remove partitions" in result.output
    assert "nothing to do" in result.output
    assert _describe(admin, f"{prefix}.orders")[0] == 3


def test_without_a_cluster_override_the_replication_factor_is_capped_to_the_brokers(kafka_bootstrap, admin, prefix, tmp_path):
    path = _write(tmp_path / "topology.yaml", _topology(prefix))
    brokers = len(admin.list_topics(timeout=10).brokers)
    result = _cli("apply", "--file", str(path), "--bootstrap-servers", kafka_bootstrap, "--registry-url", NO_REGISTRY)
    assert result.exit_code == 0, result.output
    expected_rf = min(3, brokers)
    if brokers < 3:
        assert f"replication factor capped to {brokers} for 2 new topic(s) (topology asks for up to 3)" in result.output
    assert _describe(admin, f"{prefix}.orders")[1] == expected_rf


def test_schema_files_are_registered_once_and_a_changed_file_adds_a_version(
    kafka_bootstrap, registry_url, admin, prefix, tmp_path
):
    schema = tmp_path / "schemas" / "order.avsc"
    schema.parent.mkdir()
    schema.write_text(json.dumps(SCHEMA_V1, indent=2))
    path = _write(tmp_path / "topology.yaml", _topology(prefix, value_schema="schemas/order.avsc"))
    common = ["--file", str(path), "--bootstrap-servers", kafka_bootstrap, "--registry-url", registry_url, "--cluster", "local"]
    subject = f"{prefix}.orders-value"
    registry = SchemaRegistryClient({"url": registry_url})
    try:
        plan = _cli("plan", *common)
        assert f"+ register schema {subject} from schemas/order.avsc (new subject)" in plan.output

        first = _cli("apply", *common)
        assert first.exit_code == 0, first.output
        assert f"done: registered schema {subject} from schemas/order.avsc" in first.output
        latest = registry.get_latest_version(subject)
        assert (latest.version, json.loads(latest.schema.schema_str)) == (1, SCHEMA_V1)

        assert "nothing to do" in _cli("apply", *common).output

        schema.write_text(json.dumps(SCHEMA_V2))
        plan = _cli("plan", *common)
        assert f"+ register schema {subject} from schemas/order.avsc (differs from latest version 1)" in plan.output
        second = _cli("apply", *common)
        assert second.exit_code == 0, second.output
        registry.clear_latest_caches()
        latest = registry.get_latest_version(subject)
        assert (latest.version, json.loads(latest.schema.schema_str)) == (2, SCHEMA_V2)
        assert "nothing to do" in _cli("apply", *common).output
    finally:
        if subject in registry.get_subjects():
            registry.delete_subject(subject)
            registry.delete_subject(subject, permanent=True)


def test_a_schema_the_registry_refuses_is_reported_and_apply_fails(kafka_bootstrap, registry_url, admin, prefix, tmp_path):
    schema = tmp_path / "order.avsc"
    schema.write_text(json.dumps(SCHEMA_V1))
    path = _write(tmp_path / "topology.yaml", _topology(prefix, value_schema="order.avsc"))
    common = ["--file", str(path), "--bootstrap-servers", kafka_bootstrap, "--registry-url", registry_url, "--cluster", "local"]
    subject = f"{prefix}.orders-value"
    registry = SchemaRegistryClient({"url": registry_url})
    try:
        assert _cli("apply", *common).exit_code == 0
        # a new required field without a default breaks BACKWARD compatibility (the registry default)
        incompatible = dict(SCHEMA_V1, fields=[*SCHEMA_V1["fields"], {"name": "currency", "type": "string"}])
        schema.write_text(json.dumps(incompatible))
        result = _cli("apply", *common)
        assert result.exit_code == 1
        assert f"failed: register schema {subject} from order.avsc:" in result.output
        assert "incompatible" in result.output and "409" in result.output
        registry.clear_latest_caches()
        assert registry.get_latest_version(subject).version == 1
    finally:
        if subject in registry.get_subjects():
            registry.delete_subject(subject)
            registry.delete_subject(subject, permanent=True)


def test_apply_with_an_unreachable_registry_creates_topics_but_fails_naming_the_registry(
    kafka_bootstrap, admin, prefix, tmp_path
):
    (tmp_path / "order.avsc").write_text(json.dumps(SCHEMA_V1))
    path = _write(tmp_path / "topology.yaml", _topology(prefix, value_schema="order.avsc"))
    result = _cli(
        "apply", "--file", str(path), "--bootstrap-servers", kafka_bootstrap, "--registry-url", NO_REGISTRY, "--cluster", "local"
    )
    assert result.exit_code == 1
    assert "schema registry not read" in result.output
    assert "failed: schemas not checked: the schema registry was not read" in result.output
    assert f"done: created topic {prefix}.orders" in result.output
    assert _describe(admin, f"{prefix}.orders")[0] == 2
