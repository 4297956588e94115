"""Settings and local-stack logic that needs no server."""

from __future__ import annotations

import socket
import uuid

import pytest

from psmesh.config import Settings
from psmesh.sources import source_sql
from psmesh.stack.exceptions import StackError
from psmesh.stack import kafka
from psmesh.stack.kafka import KafkaServer, new_cluster_id
from psmesh.stack.process import ManagedProcess, port_in_use


def test_kafka_client_config_carries_sasl_without_printing_the_secret(monkeypatch):
    monkeypatch.setenv("PSMESH_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("PSMESH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PSMESH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("PSMESH_KAFKA_SASL_USERNAME", "mesh")
    settings = Settings()
    conf = settings.kafka_client_config()
    assert conf["sasl.password"] == "s3cret" and conf["security.protocol"] == "SASL_SSL"
    assert "s3cret" not in repr(settings)


def test_external_servers_override_the_local_addresses(monkeypatch):
    monkeypatch.setenv("PSMESH_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("PSMESH_REGISTRY_URL", "https://registry.example:8081")
    monkeypatch.setenv("PSMESH_PG_HOST", "db.example")
    settings = Settings()
    assert settings.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.schema_registry_url == "https://registry.example:8081"
    assert settings.pg_dsn("crm").startswith("host=db.example port=5433 dbname=crm")


def test_kafka_config_is_kraft_on_loopback_with_topics_never_auto_created(tmp_path):
    server = KafkaServer(Settings(home=tmp_path, kafka_port=19999, kafka_controller_port=19998))
    server._write_config()
    props = dict(
        line.split("=", 1) for line in server.config.read_text().splitlines() if line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19999,CONTROLLER://127.0.0.1:19998"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert props["group.initial.rebalance.delay.ms"] == "0"  # a test's or the demo's group forms at once


def test_the_initial_rebalance_delay_is_a_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("PSMESH_KAFKA_INITIAL_REBALANCE_DELAY_MS", "3000")
    server = KafkaServer(Settings(home=tmp_path))
    server._write_config()
    assert "group.initial.rebalance.delay.ms=3000" in server.config.read_text().splitlines()


def test_start_refuses_a_port_held_by_another_process_and_names_the_variable(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        server = KafkaServer(Settings(home=tmp_path, kafka_port=port))
        with pytest.raises(StackError, match=rf"port {port} .*PSMESH_KAFKA_PORT"):
            server.start()


def test_managed_process_stop_kills_the_whole_group_and_forgets_the_pid(tmp_path):
    proc = ManagedProcess("sleeper", tmp_path)
    proc.start(["bash", "-c", "sleep 300 & sleep 300"])
    assert proc.running()
    assert proc.stop(timeout=5)
    assert not proc.running() and not proc.pidfile.exists()
    assert proc.stop() is False


def test_source_sql_defines_every_domain_table():
    expected = {
        "crm": ["accounts", "opportunities", "opportunity_lines", "opportunity_milestones", "change_orders"],
        "psa": ["resources", "assignments", "time_off"],
        "timeexp": ["time_entries", "expenses"],
        "erp": ["projects", "billing_milestones", "billing_periods", "billing_events", "invoices"],
    }
    for source, tables in expected.items():
        sql = source_sql(source)
        for table in tables:
            assert f"CREATE TABLE IF NOT EXISTS {table} (" in sql
    with pytest.raises(ValueError, match="unknown source database 'hr'"):
        source_sql("hr")


def test_a_cluster_id_never_starts_with_a_dash_the_storage_tool_would_read_as_an_option(monkeypatch):
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])  # "-A...", then "AQEB..."
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    assert new_cluster_id() == "AQEBAQEBAQEBAQEBAQEBAQ"


def test_a_sinks_database_is_the_topologys_target_else_its_own_name():
    from pathlib import Path

    from psmesh.ports import sink_database
    from psmesh.topology.model import load_topology

    topology = load_topology(Path(__file__).resolve().parents[3] / "topology.yaml")
    assert (sink_database(topology, "erp"), sink_database(topology, "reporting")) == ("erp", "reporting")
    assert sink_database(None, "reporting") == "reporting"
