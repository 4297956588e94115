"""docker-compose.yml describes the same system as the local stack (no Docker engine needed to check)."""

from pathlib import Path

import yaml

from psmesh.config import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[3]


def test_compose_runs_the_pinned_kafka_postgres_with_logical_wal_and_the_psmesh_registry():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "wal_level=logical" in services["postgres"]["command"]
    assert services["registry"]["command"][:3] == ["psmesh", "registry", "serve"]
    assert services["registry"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    # Same host ports and variables as `psmesh dev up`, so every psmesh command works against either.
    assert services["kafka"]["ports"] == ["${PSMESH_BIND_HOST:-127.0.0.1}:${PSMESH_KAFKA_PORT:-9092}:9092"]
    assert services["postgres"]["ports"] == ["${PSMESH_BIND_HOST:-127.0.0.1}:${PSMESH_PG_PORT:-5433}:5432"]
    assert services["registry"]["ports"] == ["${PSMESH_BIND_HOST:-127.0.0.1}:${PSMESH_REGISTRY_PORT:-8081}:8081"]
    init = (ROOT / "docker" / "postgres-init.sql").read_text()
    for db in ("crm", "psa", "timeexp", "erp", "reporting"):
        assert f"CREATE DATABASE {db};" in init


def test_the_maven_pom_pins_the_same_kafka_as_the_settings():
    pom = (ROOT / "psmesh" / "stack" / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom
