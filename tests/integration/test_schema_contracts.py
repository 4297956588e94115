"""The .avsc contracts in schemas/ are what the capture registers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from psmesh.sources import source_sql
from psmesh.topology import load_topology
from streams.envelope import key_schema, value_schema
from streams.snapshot import TableRef, table_columns
from tests.integration.capture_support import RunningCapture, ScratchSource

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_committed_avsc_files_equal_the_schemas_derived_from_the_source_tables(stack_settings):
    topology = load_topology(ROOT / "topology.yaml")
    for source in topology.sources:
        scratch = f"contract_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(stack_settings.pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'create database "{scratch}"')
        try:
            with psycopg.connect(stack_settings.pg_dsn(scratch), autocommit=True) as conn:
                conn.execute(source_sql(source.database))
                for table in source.tables:
                    topic = source.change_topic(table)
                    columns = table_columns(conn, TableRef("public", table))
                    for kind, schema in (("key", key_schema(topic, columns)), ("value", value_schema(topic, columns))):
                        path = ROOT / "schemas" / source.name / f"{table}-{kind}.avsc"
                        assert json.loads(path.read_text()) == schema, f"{path} is out of date: run psmesh cdc schemas"
                    declared = topology.topic(topic)
                    assert declared.key_schema == f"schemas/{source.name}/{table}-key.avsc"
                    assert declared.value_schema == f"schemas/{source.name}/{table}-value.avsc"
        finally:
            with psycopg.connect(stack_settings.pg_dsn("postgres"), autocommit=True) as conn:
                conn.execute(f'drop database "{scratch}" with (force)')


def test_schema_the_capture_registers_from_pgoutput_equals_the_catalog_derived_one(stack_settings, tmp_path):
    source = ScratchSource.create(stack_settings, tmp_path / "cdc")
    try:
        with RunningCapture(source.config(snapshot=False)) as run:
            source.execute("insert into resources values (1, 'A', 'a@x', 'analyst', 'aws', '{}', 'NA', 'employee', 1, 2, 40, true, '2025-01-01', now())")
            source.execute("insert into time_entries values (1, 1, 'PRJ-1', 'analyst', '2026-01-05', 8, true, 100, 50, 'draft', null, null, null, now())")
            registry = SchemaRegistryClient({"url": stack_settings.schema_registry_url})
            for table in ("resources", "time_entries"):
                subject = f"{source.topic(table)}-value"
                for _ in range(100):
                    try:
                        registered = json.loads(registry.get_latest_version(subject).schema.schema_str)
                        break
                    except Exception:  # noqa: BLE001 - not registered yet
                        import time

                        time.sleep(0.1)
                with psycopg.connect(source.dsn) as conn:
                    columns = table_columns(conn, TableRef("public", table))
                assert registered == value_schema(source.topic(table), columns)
        assert run.error is None
    finally:
        source.drop()
