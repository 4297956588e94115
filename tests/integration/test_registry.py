"""The schema registry, driven by confluent-kafka's own client and Avro serdes.

Every test talks real HTTP to a real ``python -m psmesh.registry`` process
that keeps its state in a real Kafka topic (``_schemas_<uuid>``, deleted at
the end). The module shares one registry; each test uses subjects of its own.
The restart test runs registries of its own on a topic of its own.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RegistryProcess:
    """One ``python -m psmesh.registry`` process on a free port, logging to a file."""

    def __init__(self, bootstrap: str, topic: str, logdir: Path) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logfile = logdir / f"registry-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> RegistryProcess:
        with self.logfile.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "psmesh.registry",
                    "--bootstrap-servers", self.bootstrap,
                    "--port", str(self.port),
                    "--topic", self.topic,
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"registry exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/subjects", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise AssertionError(f"registry not ready after {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait: returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""


def _delete_topics(bootstrap: str, *topics: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(list(topics), operation_timeout=30).values():
        try:
            future.result()
        except Exception:  # noqa: BLE001 - cleanup is best effort; the topic names are unique anyway
            pass


@pytest.fixture(scope="module")
def registry(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    topic = f"_schemas_{uuid.uuid4().hex}"
    process = RegistryProcess(kafka_bootstrap, topic, tmp_path_factory.mktemp("registry")).start()
    try:
        yield process
    finally:
        try:
            assert process.stop() == 0, process.log()
        finally:
            process.kill()
            _delete_topics(kafka_bootstrap, topic)


@pytest.fixture()
def client(registry: RegistryProcess) -> SchemaRegistryClient:
    sr = SchemaRegistryClient({"url": registry.url})
    yield sr
    sr.close()


@pytest.fixture()
def subject() -> str:
    return f"test-{uuid.uuid4().hex[:12]}-value"


def _record(name: str, *fields: dict) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "psmesh.test", "fields": list(fields)})


ID = {"name": "id", "type": "long"}
V1 = _record("Project", ID)
V2_DEFAULTED = _record("Project", ID, {"name": "budget", "type": "double", "default": 0.0})
V2_REQUIRED = _record("Project", ID, {"name": "owner_email", "type": "string"})
INVOICE = _record(
    "Invoice",
    ID,
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "note", "type": ["null", "string"], "default": None},
)


def test_decimal_record_round_trips_through_kafka_with_avro_serdes(client, registry, kafka_bootstrap):
    topic = f"registry-roundtrip-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    try:
        serializer = AvroSerializer(client, INVOICE)
        deserializer = AvroDeserializer(client)
        value = {"id": 7, "amount": Decimal("1234.50"), "note": "milestone 2"}
        payload = serializer(value, SerializationContext(topic, MessageField.VALUE))

        registered = client.get_latest_version(f"{topic}-value")
        assert payload[0] == 0
        assert int.from_bytes(payload[1:5], "big") == registered.schema_id

        producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
        producer.produce(topic, value=payload)
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{uuid.uuid4().hex}"})
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = None
        deadline = time.monotonic() + 30
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
        consumer.close()
        assert msg is not None and msg.error() is None

        # A fresh client: the deserializer must fetch the schema by id over HTTP.
        fresh = SchemaRegistryClient({"url": registry.url})
        decoded = AvroDeserializer(fresh)(msg.value(), SerializationContext(topic, MessageField.VALUE))
        assert decoded == value
        assert isinstance(decoded["amount"], Decimal)
        assert deserializer(payload, SerializationContext(topic, MessageField.VALUE)) == value
    finally:
        _delete_topics(kafka_bootstrap, topic)


def test_same_schema_gets_the_same_id_across_two_subjects(client, subject):
    first = client.register_schema(subject, Schema(V1, "AVRO"))
    # Same schema, other spacing and key order, other subject.
    respaced = json.dumps(json.loads(V1), indent=2, sort_keys=True)
    second = client.register_schema(f"{subject}-other", Schema(respaced, "AVRO"))
    assert first == second
    assert client.register_schema(subject, Schema(V1, "AVRO")) == first
    versions = client.get_schema_versions(first)
    assert {(v.subject, v.version) for v in versions} == {(subject, 1), (f"{subject}-other", 1)}
    different = client.register_schema(f"{subject}-third", Schema(INVOICE, "AVRO"))
    assert different != first


def test_incompatible_change_under_backward_is_refused_with_409(client, subject):
    client.register_schema(subject, Schema(V1, "AVRO"))
    assert client.get_compatibility() == "BACKWARD"
    assert client.test_compatibility(subject, Schema(V2_REQUIRED, "AVRO")) is False

    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema(subject, Schema(V2_REQUIRED, "AVRO"))
    assert info.value.http_status_code == 409
    assert info.value.error_code == 409
    assert "owner_email" in info.value.error_message
    assert "BACKWARD" in info.value.error_message
    assert client.get_versions(subject) == [1]

    assert client.test_compatibility(subject, Schema(V2_DEFAULTED, "AVRO")) is True
    client.register_schema(subject, Schema(V2_DEFAULTED, "AVRO"))
    assert client.get_versions(subject) == [1, 2]


def test_compatibility_config_per_subject_and_global(client, subject):
    client.register_schema(subject, Schema(V1, "AVRO"))
    with pytest.raises(SchemaRegistryError) as info:
        client.get_compatibility(subject)
    assert info.value.error_code == 40408

    client.set_compatibility(subject, "NONE")
    assert client.get_compatibility(subject) == "NONE"
    # NONE lets the breaking change in.
    client.register_schema(subject, Schema(V2_REQUIRED, "AVRO"))
    assert client.get_versions(subject) == [1, 2]

    previous = client.get_compatibility()
    try:
        client.set_compatibility(level="FULL")
        assert client.get_compatibility() == "FULL"
        assert client.get_config().compatibility_level.value == "FULL"
        assert client.get_compatibility(subject) == "NONE"
    finally:
        client.set_compatibility(level=previous)
    assert client.delete_config(subject).compatibility_level.value == "NONE"

    with pytest.raises(SchemaRegistryError) as info:
        client.set_compatibility(subject, "SIDEWAYS")
    assert info.value.http_status_code == 422 and info.value.error_code == 42203


def test_delete_version_and_subject_soft_then_permanent(client, subject):
    schema_id = client.register_schema(subject, Schema(V1, "AVRO"))
    client.register_schema(subject, Schema(V2_DEFAULTED, "AVRO"))

    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert client.get_versions(subject, deleted=True) == [1, 2]
    assert client.delete_version(subject, 2, permanent=True) == 2
    assert client.get_versions(subject, deleted=True) == [1]

    with pytest.raises(SchemaRegistryError) as info:
        client.delete_subject(subject, permanent=True)
    assert info.value.error_code == 40405
    assert client.delete_subject(subject) == [1]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    # Data written with a soft-deleted schema stays readable.
    assert json.loads(SchemaRegistryClient({"url": client.config()["url"]}).get_schema(schema_id).schema_str)

    assert client.delete_subject(subject, permanent=True) == [1]
    with pytest.raises(SchemaRegistryError) as info:
        client.get_versions(subject)
    assert info.value.http_status_code == 404 and info.value.error_code == 40401


def test_lookup_returns_the_registered_version(client, subject):
    schema_id = client.register_schema(subject, Schema(V1, "AVRO"))
    client.register_schema(subject, Schema(V2_DEFAULTED, "AVRO"))
    found = client.lookup_schema(subject, Schema(V1, "AVRO"))
    assert (found.schema_id, found.subject, found.version) == (schema_id, subject, 1)

    with pytest.raises(SchemaRegistryError) as info:
        client.lookup_schema(subject, Schema(INVOICE, "AVRO"))
    assert info.value.error_code == 40403
    with pytest.raises(SchemaRegistryError) as info:
        client.lookup_schema(f"{subject}-missing", Schema(V1, "AVRO"))
    assert info.value.error_code == 40401

    latest = client.get_version(subject, "latest")
    assert latest.version == 2
    assert json.loads(latest.schema.schema_str) == json.loads(V2_DEFAULTED)


def test_non_avro_schema_type_is_refused_with_42201(client, subject):
    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema(subject, Schema('{"type": "object"}', "JSON"))
    assert info.value.http_status_code == 422 and info.value.error_code == 42201
    assert "AVRO" in info.value.error_message


def test_registry_topic_is_compacted_and_in_confluent_format(client, registry, kafka_bootstrap, subject):
    schema_id = client.register_schema(subject, Schema(V1, "AVRO"))
    client.set_compatibility(subject, "FULL")

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    metadata = admin.list_topics(registry.topic, timeout=10)
    assert len(metadata.topics[registry.topic].partitions) == 1
    resource = ConfigResource(ResourceType.TOPIC, registry.topic)
    configs = admin.describe_configs([resource])[resource].result()
    assert configs["cleanup.policy"].value == "compact"

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{uuid.uuid4().hex}"})
    _, high = consumer.get_watermark_offsets(TopicPartition(registry.topic, 0), timeout=10)
    consumer.assign([TopicPartition(registry.topic, 0, 0)])
    records = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        records.append((json.loads(msg.key()), json.loads(msg.value()) if msg.value() else None))
        if msg.offset() >= high - 1:
            break
    consumer.close()

    schema_key = {"keytype": "SCHEMA", "subject": subject, "version": 1, "magic": 1}
    config_key = {"keytype": "CONFIG", "subject": subject, "magic": 0}
    values = {json.dumps(k, sort_keys=True): v for k, v in records}
    assert values[json.dumps(schema_key, sort_keys=True)] == {
        "subject": subject,
        "version": 1,
        "id": schema_id,
        "schema": json.dumps(json.loads(V1), separators=(",", ":")),
        "deleted": False,
    }
    assert values[json.dumps(config_key, sort_keys=True)] == {"compatibilityLevel": "FULL"}


def test_http_surface_content_type_errors_mode_and_metrics(registry, subject):
    http = httpx.Client(base_url=registry.url, timeout=10)
    resp = http.get(f"/subjects/{subject}/versions")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/vnd.schemaregistry.v1+json")
    assert resp.json()["error_code"] == 40401

    resp = http.post(
        f"/subjects/{subject}/versions",
        content=json.dumps({"schema": V1}),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert resp.status_code == 200 and "id" in resp.json()
    assert http.get("/mode").json() == {"mode": "READWRITE"}
    assert http.get("/schemas/types").json() == ["AVRO"]

    metrics = http.get("/metrics").text
    assert 'route="/subjects/{subject}/versions"' in metrics
    assert "psmesh_registry_schemas_registered_total" in metrics


def test_ids_survive_a_registry_restart(kafka_bootstrap, tmp_path):
    topic = f"_schemas_{uuid.uuid4().hex}"
    first = RegistryProcess(kafka_bootstrap, topic, tmp_path).start()
    second = None
    try:
        sr = SchemaRegistryClient({"url": first.url})
        ids = {
            "a": sr.register_schema("restart-a", Schema(V1, "AVRO")),
            "a2": sr.register_schema("restart-a", Schema(V2_DEFAULTED, "AVRO")),
            "b": sr.register_schema("restart-b", Schema(INVOICE, "AVRO")),
            "c": sr.register_schema("restart-c", Schema(V1, "AVRO")),
        }
        sr.set_compatibility("restart-b", "FULL")
        sr.delete_version("restart-a", 2)
        texts = {name: sr.get_schema(schema_id).schema_str for name, schema_id in ids.items()}
        sr.close()

        assert first.stop() == 0, first.log()
        assert "schema registry stopping" in first.log()

        second = RegistryProcess(kafka_bootstrap, topic, tmp_path).start()
        assert "schema registry listening on http://127.0.0.1:" in second.log()
        assert "3 schemas loaded" in second.log()
        sr = SchemaRegistryClient({"url": second.url})
        for name, schema_id in ids.items():
            assert sr.get_schema(schema_id).schema_str == texts[name]
        assert sr.register_schema("restart-a", Schema(V1, "AVRO")) == ids["a"]
        assert sr.register_schema("restart-b", Schema(INVOICE, "AVRO")) == ids["b"]
        assert sr.register_schema("restart-new", Schema(V2_DEFAULTED, "AVRO")) == ids["a2"]
        assert sr.get_versions("restart-a") == [1]
        assert sr.get_versions("restart-a", deleted=True) == [1, 2]
        assert sr.get_compatibility("restart-b") == "FULL"
        fresh = sr.register_schema("restart-d", Schema(_record("Fresh", ID), "AVRO"))
        assert fresh == max(ids.values()) + 1
        sr.close()
        assert second.stop() == 0, second.log()
    finally:
        first.kill()
        if second is not None:
            second.kill()
        _delete_topics(kafka_bootstrap, topic)

