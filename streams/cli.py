"""``psmesh cdc``: run and inspect the capture of a source database."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from psmesh.config import load_settings

logger = logging.getLogger(__name__)


def _topology(path: Path | None):
    """The topology at ``--file``: a file given but missing is an error naming it, never another file."""
    from psmesh.topology.cli import default_topology_path
    from psmesh.topology.exceptions import TopologyError
    from psmesh.topology.model import load_topology

    target = path or default_topology_path()
    try:
        return load_topology(target)
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from exc


def capture_config(source_name: str, topology_file: Path | None = None):
    from streams.source import CaptureConfig

    settings = load_settings()
    topology = _topology(topology_file)
    source = next((s for s in topology.sources if s.name == source_name), None)
    if source is None:
        names = ", ".join(s.name for s in topology.sources)
        raise click.ClickException(f"no source {source_name!r} in the topology (sources: {names})")
    partitions, replication, configs = {}, {}, {}
    cluster = os.environ.get("PSMESH_CLUSTER")
    for name in [*source.change_topics, *([source.dead_letter] if source.dead_letter else [])]:
        try:
            topic = topology.topic(name)
        except KeyError:
            continue
        # as psmesh topology apply would create it, should the capture run first (a table just added, say)
        partitions[name] = topic.partitions
        replication[name] = topology.replication_factor(topic, cluster if cluster in topology.clusters else None)
        configs[name] = topic.topic_config()
    return CaptureConfig(
        name=source.name,
        dsn=settings.pg_dsn(source.database),
        database=source.database,
        tables=tuple(f"{source.pg_schema}.{t}" for t in source.tables),
        slot=source.slot,
        publication=source.publication,
        registry_url=settings.schema_registry_url,
        kafka=settings.kafka_client_config(),
        state_dir=settings.home / "cdc",
        topic_partitions=partitions,
        topic_replication=replication,
        topic_configs=configs,
        dead_letter_topic=source.dead_letter,
    )


@click.group()
def cdc() -> None:
    """Change data capture from the source databases."""


@cdc.command()
@click.argument("source")
@click.option("--file", "topology_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Topology file [default: ./topology.yaml, else the repository's].")
@click.option("--metrics-port", type=int, default=None,
              help="Serve Prometheus metrics on this port (default: PSMESH_CDC_METRICS_PORT_BASE + the source's "
                   "index, else the source's metrics_port in the topology; 0: none).")
def run(source: str, topology_file: Path | None, metrics_port: int | None) -> None:
    """Capture SOURCE (a source of topology.yaml) into its change topics until stopped."""
    import psycopg

    from psmesh.metrics_http import serve_metrics
    from psmesh.ports import capture_metrics_port
    from streams.exceptions import RegistryUnavailable, ReplicationError, SchemaNowAccepted, StreamsError
    from streams.source import CaptureSource

    config = capture_config(source, topology_file)
    if metrics_port is None:
        metrics_port = capture_metrics_port(load_settings(), _topology(topology_file), source)
    serve_metrics(metrics_port, f"cdc-{source}")
    logger.info("capturing %s (%d tables) with slot %s", source, len(config.tables), config.slot)
    delay = 1.0
    while True:
        capture = CaptureSource(config)
        capture.install_signal_handlers()
        try:
            try:
                capture.run()
            finally:  # before a new capture starts: none of this one's events may land after the new one's
                capture.close()
            break
        except SchemaNowAccepted as exc:
            # a table stopped by a refused schema can go on: its changes are in the slot, from where a new run starts
            # (or, refused at its snapshot, the new run snapshots it)
            if capture.stopping:
                break
            logger.warning("%s", exc)
            delay = 1.0
        except StreamsError as exc:
            # PostgreSQL or the registry went away (restart, failover, network): resume from the slot,
            # which still holds everything not confirmed; nothing is lost, a few events may repeat.
            # Any other capture error (a bad configuration, say) stops the capture.
            registry = isinstance(exc, RegistryUnavailable)
            lost = registry or isinstance(exc, ReplicationError) or isinstance(exc.__cause__, psycopg.OperationalError)
            if not lost:
                raise click.ClickException(str(exc)) from exc
            if capture.stopping:
                break
            logger.warning("lost %s for %s (%s); reconnecting in %.0fs, resuming from slot %s",
                           "the schema registry" if registry else "PostgreSQL", source,
                           str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                           delay, config.slot)
            if capture.wait_stop(delay):
                break
            delay = min(delay * 2, 30.0)
        except psycopg.OperationalError as exc:
            if capture.stopping or capture.wait_stop(delay):
                break
            logger.warning("lost PostgreSQL for %s (%s); retrying in %.0fs", source, exc, delay)
            delay = min(delay * 2, 30.0)
    logger.info("capture of %s stopped", source)


@cdc.command()
@click.option("--file", "topology_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Topology file [default: ./topology.yaml, else the repository's].")
@click.option("--json", "as_json", is_flag=True)
def status(topology_file: Path | None, as_json: bool) -> None:
    """Slot position, lag and last event time per source; exit 1 if a slot is missing or inactive."""
    import psycopg

    settings = load_settings()
    topology = _topology(topology_file)
    rows = []
    ok = True
    for source in topology.sources:
        row = {"source": source.name, "slot": source.slot, "active": False, "confirmed_lsn": None,
               "lag_bytes": None, "last_event_at": None, "state": "no slot"}
        try:
            with psycopg.connect(settings.pg_dsn(source.database), connect_timeout=5) as conn:
                slot = conn.execute(
                    "select active, confirmed_flush_lsn::text, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                    "from pg_replication_slots where slot_name = %s", (source.slot,)
                ).fetchone()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            row["state"] = f"database unreachable: {reason}"
            slot = None
        if slot:
            row.update(active=slot[0], confirmed_lsn=slot[1], lag_bytes=slot[2], state="streaming" if slot[0] else "inactive")
        status_file = settings.home / "cdc" / f"{source.name}.status.json"
        if status_file.exists():
            try:
                data = json.loads(status_file.read_text())
            except (OSError, ValueError) as exc:  # being rewritten, or cut short by a full disk
                data = {"errors": {"status file": f"{status_file} unreadable: {exc}"}}
            row["last_event_at"] = data.get("last_event_at")
            if data.get("errors"):
                row["state"] = "errored: " + "; ".join(data["errors"].values())
        ok &= bool(row["active"])
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif (len({r["state"] for r in rows}) == 1 and rows[0]["state"].startswith("database unreachable: ")
          and not any(r["last_event_at"] for r in rows)):
        # every source's database on one server that refuses them all the same way, and nothing else to show: one
        # line, as the other commands say it
        where = f"{settings.pg_host or settings.bind_host}:{settings.pg_port}"
        click.echo(f"PostgreSQL at {where}: cannot connect: {rows[0]['state'].split(': ', 1)[1]}", err=True)
    else:
        # the state last: an error's text is long, and the columns before it stay aligned
        click.echo(f"{'source':9} {'slot':16} {'confirmed':14} {'lag bytes':>10}  {'last event':32}  state")
        for r in rows:
            lag = "" if r["lag_bytes"] is None else str(r["lag_bytes"])
            click.echo(f"{r['source']:9} {r['slot']:16} {r['confirmed_lsn'] or '-':14} {lag:>10}  "
                       f"{r['last_event_at'] or '-':32}  {r['state']}")
    sys.exit(0 if ok else 1)


@cdc.command()
@click.option("--file", "topology_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Topology file [default: ./topology.yaml, else the repository's].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas"), show_default=True)
@click.option("--check", is_flag=True, help="Do not write; exit 1 if a file differs from what the capture would register.")
def schemas(topology_file: Path | None, out: Path, check: bool) -> None:
    """Write the change-event schemas of every captured table as .avsc files (the contracts in the repository).

    Generated from the source databases' catalogs exactly as the capture
    generates them from Relation messages: <out>/<source>/<table>-key.avsc and
    <table>-value.avsc.
    """
    import psycopg

    from streams.envelope import key_schema, value_schema
    from streams.snapshot import TableRef, table_columns

    settings = load_settings()
    topology = _topology(topology_file)
    differ = []
    for source in topology.sources:
        with psycopg.connect(settings.pg_dsn(source.database)) as conn:
            for table in source.tables:
                topic = source.change_topic(table)
                try:
                    columns = table_columns(conn, TableRef(source.pg_schema, table))
                except LookupError as exc:
                    raise click.ClickException(f"source {source.name} (database {source.database}): {exc}; "
                                               "create it, or take it out of the source's tables") from exc
                for kind, schema in (("key", key_schema(topic, columns)), ("value", value_schema(topic, columns))):
                    path = out / source.name / f"{table}-{kind}.avsc"
                    text = json.dumps(schema, indent=2) + "\n"
                    if path.exists() and path.read_text() == text:
                        continue
                    differ.append(str(path))
                    if not check:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(text)
    if check and differ:
        click.echo("out of date: " + ", ".join(differ), err=True)
        sys.exit(1)
    click.echo(f"{len(differ)} schema file(s) {'differ' if check else 'written'}")
