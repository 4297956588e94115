"""``psmesh demo``: the main job, as far as the pipeline exists.

Today: bring the local stack up, apply topology.yaml (topics, schemas),
create the four source databases' tables, start one capture process per
source, and show the health of every part. The demo firm, processors and
sinks join this command as they land.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from psmesh.config import SOURCE_DATABASES, load_settings
from psmesh.stack import LocalStack, StackError


@click.command()
@click.option("--file", "topology_file", type=click.Path(path_type=Path), default=None, help="Topology file (default: ./topology.yaml).")
def demo(topology_file: Path | None) -> None:
    """Run the mesh locally: stack up, topology applied, capture running, status shown."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from psmesh.sources import create_source_tables
    from psmesh.stack.services import CaptureService
    from psmesh.topology.apply import apply_topology
    from psmesh.topology.cli import default_topology_path
    from psmesh.topology.exceptions import TopologyError
    from psmesh.topology.model import load_topology

    settings = load_settings()
    stack = LocalStack(settings)
    began = time.monotonic()
    click.secho("1/4 starting the local stack (Kafka, PostgreSQL, schema registry)", bold=True)
    try:
        stack.up(progress=lambda name, what, secs: click.echo(f"    {name:9} {what} ({secs:.1f}s)"))
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc

    path = topology_file or default_topology_path()
    click.secho(f"2/4 applying {path}", bold=True)
    try:
        topology = load_topology(path)
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from exc
    admin = AdminClient(settings.kafka_client_config())
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    plan, result = apply_topology(topology, admin, registry, cluster="local")
    if plan.empty and result.ok:
        click.echo("    nothing to do: the cluster matches the topology")
    for line in result.done:
        click.echo(f"    done: {line}")
    for line in result.failed:
        click.echo(f"    failed: {line}")

    click.secho("3/4 source databases and capture", bold=True)
    create_source_tables(settings)
    for source in topology.sources:
        if source.database not in SOURCE_DATABASES:
            continue
        service = CaptureService(settings, source.name)
        try:
            what = service.start()
        except StackError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"    cdc-{source.name:9} {what} (log {service.process.logfile})")

    click.secho("4/4 status", bold=True)
    healthy = result.ok
    for part in stack.status():
        healthy &= part.healthy
        click.echo(f"    {part.name:13} {part.state:9} {part.address:24} {part.log}")
    for source in topology.sources:
        service = CaptureService(settings, source.name)
        state = "running" if service.process.running() else "stopped"
        healthy &= state == "running"
        click.echo(f"    cdc-{source.name:9} {state:9} {'slot ' + source.slot:24} {service.process.logfile}")
    click.echo(
        f"\nready in {time.monotonic() - began:.1f}s. Next:\n"
        "    psmesh cdc status              slot position and lag per source\n"
        "    psmesh topology graph -o mesh.svg\n"
        f"    psql 'host={settings.bind_host} port={settings.pg_port} user={settings.pg_user} dbname=crm'\n"
        "    psmesh dev down                stop everything"
    )
    sys.exit(0 if healthy else 1)
