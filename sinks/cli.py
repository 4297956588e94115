"""``psmesh sink``: run the ERP sink or the reporting sink."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from psmesh.cliopts import checked
from psmesh.config import check_dsn, check_registry_url, load_settings

logger = logging.getLogger(__name__)

#: sink argument → topology name of the sink.
SINKS = {"erp": "erp_sink", "reporting": "reporting_sink"}


@click.group()
def sink() -> None:
    """Write the mesh's events out: projects and billing into the ERP, views into the reporting store."""


@sink.command()
@click.argument("name", type=click.Choice(sorted(SINKS)))
@click.option("--bootstrap-servers", default=None, help="Kafka bootstrap servers (default: PSMESH_KAFKA_BOOTSTRAP or the local stack).")
@click.option("--registry-url", default=None, callback=checked(check_registry_url),
              help="Schema registry URL (default: PSMESH_REGISTRY_URL or the local stack).")
@click.option("--dsn", default=None, callback=checked(check_dsn),
              help="libpq connection string of the target database (default: from PSMESH_PG_*).")
@click.option("--group", "group_id", default=None, help="Consumer group (default: psmesh-<sink name>).")
@click.option("--dead-letter-topic", default=None,
              help="Where refused records go (default: the sink's dead_letter in the topology, else dlq.sinks).")
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Most records per database transaction.")
@click.option("--metrics-port", type=int, default=None,
              help="Serve Prometheus metrics on this port (default: PSMESH_<NAME>_SINK_METRICS_PORT, else the "
                   "sink's metrics_port in the topology; 0: none).")
@click.option("--snapshot-every", type=float, default=10.0, show_default=True,
              help="reporting: least seconds between KPI snapshots (kpi_snapshots) while the store changes; 0: none.")
@click.option("--file", "topology_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Topology file giving the sink's target database, dead-letter topic and metrics port "
                   "[default: ./topology.yaml, else the repository's].")
def run(name: str, bootstrap_servers: str | None, registry_url: str | None, dsn: str | None, group_id: str | None,
        dead_letter_topic: str | None, batch_size: int, metrics_port: int | None, snapshot_every: float,
        topology_file: Path | None) -> None:
    """Run sink NAME (erp or reporting) until stopped (SIGTERM or Ctrl-C)."""
    from psmesh.metrics_http import serve_metrics
    from psmesh.ports import default_topology, sink_database, sink_dead_letter_topic, sink_metrics_port
    from psmesh.topology.exceptions import TopologyError
    from psmesh.topology.model import load_topology
    from sinks.erp import ErpSink
    from sinks.exceptions import SinkError
    from sinks.reporting import ReportingSink
    from sinks.runner import RunnerConfig, run_sink

    settings = load_settings()
    sink_name = SINKS[name]
    try:  # an invalid file is refused: its dead-letter topic is where psmesh status and psmesh dlq look for letters
        topology = load_topology(topology_file) if topology_file else default_topology(strict=True)
    except TopologyError as exc:
        raise click.ClickException(f"the topology is invalid; the sink takes its target database, dead-letter topic "
                                   f"and metrics port from it:\n{exc}") from exc
    dead_letter_topic = dead_letter_topic or sink_dead_letter_topic(topology, name)
    database = sink_database(topology, name)
    kafka = settings.kafka_client_config()
    if bootstrap_servers:
        kafka["bootstrap.servers"] = bootstrap_servers
    config = RunnerConfig(
        kafka=kafka,
        registry_url=registry_url or settings.schema_registry_url,
        dsn=dsn or settings.pg_dsn(database),
        group_id=group_id or f"psmesh-{sink_name}",
        dead_letter_topic=dead_letter_topic,
        batch_size=batch_size,
    )
    if metrics_port is None:
        metrics_port = sink_metrics_port(settings, topology, name)
    serve_metrics(metrics_port, f"sink-{name}")
    target = ErpSink() if name == "erp" else ReportingSink(snapshot_every=snapshot_every or None)
    logger.info("running %s into database %s", sink_name, database)
    try:
        run_sink(target, config)
    except SinkError as exc:
        raise click.ClickException(str(exc)) from exc
    logger.info("%s stopped", sink_name)
