"""``psmesh demo``: the main job, as far as the pipeline exists.

Today: bring the local stack up, apply topology.yaml (topics and schemas),
and show the health of every part. Capture, the demo firm, processors and
sinks join this command as they land.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from psmesh.config import load_settings
from psmesh.stack import LocalStack, StackError


@click.command()
@click.option("--file", "topology_file", type=click.Path(path_type=Path), default=None, help="Topology file (default: ./topology.yaml).")
def demo(topology_file: Path | None) -> None:
    """Run the mesh locally: stack up, topology applied, status shown."""
    from psmesh.topology.apply import apply_topology
    from psmesh.topology.model import default_topology_path, load_topology

    settings = load_settings()
    stack = LocalStack(settings)
    began = time.monotonic()
    click.secho("1/3 starting the local stack (Kafka, PostgreSQL, schema registry)", bold=True)
    try:
        stack.up(progress=lambda name, what, secs: click.echo(f"    {name:9} {what} ({secs:.1f}s)"))
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc

    path = topology_file or default_topology_path()
    click.secho(f"2/3 applying {path}", bold=True)
    topology = load_topology(path)
    report = apply_topology(topology, settings.kafka_client_config(), settings.schema_registry_url)
    for line in report.lines():
        click.echo(f"    {line}")

    click.secho("3/3 status", bold=True)
    healthy = True
    for part in stack.status():
        healthy &= part.healthy
        click.echo(f"    {part.name:9} {part.state:9} {part.address:24} {part.log}")
    click.echo(f"\nready in {time.monotonic() - began:.1f}s. Next: psmesh topology graph; psmesh dev status; psmesh dev down")
    sys.exit(0 if healthy else 1)
