"""``psmesh registry``: run the Confluent-compatible schema registry."""

from __future__ import annotations

import click

from psmesh.config import load_settings
from psmesh.registry.exceptions import StoreError


@click.group()
def registry() -> None:
    """Confluent-compatible schema registry (Avro; state in a compacted Kafka topic)."""


@registry.command()
@click.option(
    "--bootstrap-servers",
    default=lambda: load_settings().bootstrap_servers,
    show_default="from PSMESH_KAFKA_BOOTSTRAP, else the local broker",
    help="Kafka bootstrap servers holding the registry topic.",
)
@click.option("--host", default=lambda: load_settings().bind_host, show_default="PSMESH_BIND_HOST, 127.0.0.1",
              help="Address to listen on.")
@click.option(
    "--port",
    type=int,
    default=lambda: load_settings().registry_port,
    show_default="PSMESH_REGISTRY_PORT, 8081",
    help="HTTP port to listen on.",
)
@click.option(
    "--topic",
    default=lambda: load_settings().registry_topic,
    show_default="PSMESH_REGISTRY_TOPIC, _schemas",
    help="Compacted topic holding the registry's state (one writer per topic).",
)
def serve(bootstrap_servers: str, host: str, port: int, topic: str) -> None:
    """Serve the registry until SIGTERM; the topic is created if absent."""
    from psmesh.registry.service import run_registry

    client_config = load_settings().kafka_client_config()
    client_config["bootstrap.servers"] = bootstrap_servers
    try:
        run_registry(client_config, host, port, topic)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
