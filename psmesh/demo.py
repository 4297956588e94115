"""``psmesh demo``: the main job, as far as the pipeline exists.

1. the local stack (Kafka, PostgreSQL, schema registry);
2. topology.yaml applied (topics, schemas);
3. the source databases' tables, one capture process per source, the processor
   worker and the ERP and reporting sinks;
4. the simulated consulting firm writing into the sources (closed loop: it
   books time only to projects the mesh has created in the ERP);
5. a summary: what the firm wrote, what the capture published, and the
   firm's bookings, backlog, utilization, WIP, billed and DSO read from the
   reporting store.

Running it again continues: the servers, slots and topics keep their state
and the firm is not run twice over the same tables. ``--fresh`` stops
everything and deletes the runtime directory first, only when it holds nothing
but what psmesh creates there (``psmesh.stack.home``). Ctrl-C stops
everything cleanly.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

import click

from psmesh.config import load_settings
from psmesh.stack import LocalStack, StackError
from psmesh.stack.home import remove_runtime_dir, runtime_dir_problem


@click.command()
@click.option("--file", "topology_file", type=click.Path(path_type=Path), default=None, help="Topology file (default: ./topology.yaml).")
@click.option("--size", type=click.Choice(["small", "load"]), default="small", show_default=True, help="Size of the simulated firm.")
@click.option("--weeks", type=int, default=None, help="Simulated weeks (default: the size's).")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same firm.")
@click.option("--pace", type=float, default=None, help="Max row changes per second (default: as fast as possible).")
@click.option("--fresh", is_flag=True, help="Stop everything and start from empty servers.")
def demo(topology_file: Path | None, size: str, weeks: int | None, seed: int, pace: float | None, fresh: bool) -> None:
    """Run the mesh locally with the simulated firm, then summarise."""
    settings = load_settings()
    stack = LocalStack(settings)
    if fresh:
        problem = runtime_dir_problem(settings.home)
        if problem is not None:  # before stopping anything: a mistaken PSMESH_HOME changes nothing
            raise click.ClickException(f"--fresh: not deleting {settings.home} (PSMESH_HOME): {problem}; "
                                       "check PSMESH_HOME, or delete it yourself")
        click.secho("starting fresh: stopping everything and removing " + str(settings.home), bold=True)
        stack.down()
        try:
            remove_runtime_dir(settings.home)
        except StackError as exc:
            raise click.ClickException(str(exc)) from exc
        stack = LocalStack(settings)
    try:
        healthy = _run(settings, stack, topology_file, size, weeks, seed, pace)
    except KeyboardInterrupt:
        click.secho("\ninterrupted: stopping everything", bold=True)
        for name, was_running in stack.down().items():
            click.echo(f"    {name:13} {'stopped' if was_running else 'was not running'}")
        sys.exit(130)
    sys.exit(0 if healthy else 1)


def _run(settings, stack: LocalStack, topology_file: Path | None, size: str, weeks: int | None, seed: int, pace: float | None) -> bool:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from psmesh.firm.exceptions import SourcesNotEmpty
    from psmesh.firm.params import preset
    from psmesh.firm.simulator import run as run_firm
    from psmesh.sources import create_source_tables
    from psmesh.stack.services import CaptureService, page_service, processor_service, sink_service
    from psmesh.topology.apply import apply_topology
    from psmesh.topology.cli import default_topology_path
    from psmesh.topology.exceptions import TopologyError
    from psmesh.topology.model import load_topology

    # The progress lines below say it per week already.
    logging.getLogger("psmesh.firm").setLevel(logging.WARNING)
    began = time.monotonic()
    click.secho("1/5 starting the local stack (Kafka, PostgreSQL, schema registry)", bold=True)
    try:
        stack.up(progress=lambda name, what, secs: click.echo(f"    {name:13} {what} ({secs:.1f}s)"))
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc

    path = topology_file or default_topology_path()
    click.secho(f"2/5 applying {path}", bold=True)
    try:
        topology = load_topology(path)
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from exc
    admin = AdminClient(settings.kafka_client_config())
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    plan, result = apply_topology(topology, admin, registry, cluster="local")
    if plan.empty and result.ok:
        click.echo("    nothing to do: the cluster matches the topology")
    else:
        click.echo(f"    {len(result.done)} change(s) applied, {len(result.failed)} failed")
    for line in result.failed:
        click.echo(f"    failed: {line}")

    click.secho("3/5 source databases, capture, processors and sinks", bold=True)
    create_source_tables(settings)
    services = []
    for source in topology.sources:
        service = CaptureService(settings, source.name, topology, topology_file=path)
        try:
            what = service.start()
        except StackError as exc:
            raise click.ClickException(str(exc)) from exc
        services.append(service)
        click.echo(f"    cdc-{source.name:9} {what} (log {service.process.logfile})")
    for service in (processor_service(settings), sink_service(settings, "erp", topology, path),
                    sink_service(settings, "reporting", topology, path),
                    page_service(settings)):
        try:
            what = service.start()
        except StackError as exc:
            raise click.ClickException(str(exc)) from exc
        services.append(service)
        click.echo(f"    {service.name:14} {what} ({service.address}, log {service.process.logfile})")

    click.secho(f"4/5 the firm ({size}, seed {seed}): sales, staffing, timesheets, finance", bold=True)
    firm_rows: dict[str, int] = {}
    try:
        firm_rows = run_firm(
            settings, preset(size), seed, weeks=weeks, pace=pace,
            progress=lambda p: click.echo(
                f"    week {p.week_number:2}/{p.weeks} ({p.iso_year}-W{p.iso_week:02}): "
                f"{p.changes:6,} row changes, {p.total:8,} in all, {p.rate:7,.0f}/s"),
        )
    except SourcesNotEmpty:
        click.echo("    the firm has already run on these databases: continuing with what is there (--fresh starts over)")

    click.secho("5/5 summary", bold=True)
    if firm_rows:
        click.echo(f"    the firm wrote {sum(firm_rows.values()):,} row changes: "
                   + ", ".join(f"{table} {n:,}" for table, n in sorted(firm_rows.items()) if n))
    time.sleep(2)  # let the capture catch up before counting
    topics = [t for s in topology.sources for t in s.change_topics]
    click.echo(f"    change events on Kafka: {_events_on(settings, topics):,} across {len(topics)} change topics")
    for line in _business_summary(settings):
        click.echo(f"    {line}")
    healthy = result.ok
    for part in stack.status():
        healthy &= part.healthy
        click.echo(f"    {part.name:13} {part.state:9} {part.address:24} {part.log}")
    for service in services:  # stack.status() above lists them with their health
        healthy &= service.process.running()
    cli = _cli()
    web, pg = settings.bind_host, f"'host={settings.bind_host} port={settings.pg_port} user={settings.pg_user}"
    steps = [
        (f"open http://{web}:{settings.page_port}/", "the executive page (live figures, charts and tables)"),
        (f"{cli} status", "the whole mesh: slot lag, consumer lag per topic, dead letters, health"),
        (f"{cli} reconcile", "every reporting table against one SQL query per formula"),
        (f"curl http://{web}:{settings.processors_port}/views/", "the views over HTTP"),
        (f"psql {pg} dbname=reporting' -c 'select * from exec_portfolio'",
         "(docs/reporting.md lists the tables and measures)"),
        (f"{cli} cdc status", "slot position and lag per source"),
        (f"{cli} topology graph -o mesh.svg", ""),
        (f"psql {pg} dbname=crm' -c 'select stage, count(*), sum(amount) from opportunities group by stage'", ""),
        (f"{cli} dev down", "stop everything"),
    ]
    click.echo(f"\ndone in {time.monotonic() - began:.1f}s; everything keeps running. Next:")
    for command, what in steps:
        click.echo(f"    {command:34} {what}".rstrip())
    if cli != "psmesh" and (Path(cli).parent / "activate").is_file():
        click.echo(f"    (`. {Path(cli).parent}/activate` puts psmesh on your PATH)")
    return healthy


def _cli() -> str:
    """How to call this CLI from the user's shell: ``psmesh`` when that name on the PATH is this program, else its
    absolute path (``./dev demo`` runs .venv/bin/psmesh, which is on no PATH until the venv is activated, and from
    the repository, which need not be the shell's directory)."""
    me = Path(sys.argv[0])
    program = me if me.name == "psmesh" and me.is_file() else Path(sys.executable).parent / "psmesh"
    found = shutil.which("psmesh")
    if found is not None and (not program.is_file() or Path(found).resolve() == program.resolve()):
        return "psmesh"
    if program.is_file():
        return str(program.resolve())
    return f"{sys.executable} -m psmesh"


def _business_summary(settings, settle: float = 3.0, timeout: float = 90.0) -> list[str]:
    """Bookings, backlog, utilization, WIP, billed and DSO, read from the reporting store once it settles.

    The store has settled when its view tables have not changed for ``settle``
    seconds (at most ``timeout``): the sinks have caught up with the mesh.
    """
    import psycopg

    fingerprint_sql = " UNION ALL ".join(
        f"SELECT count(*), max(updated_at) FROM {table}"
        for table in ("project_financials", "resource_week", "skill_week", "pipeline", "bookings"))
    deadline = time.monotonic() + timeout
    try:
        with psycopg.connect(settings.pg_dsn("reporting"), autocommit=True) as conn:
            last, since = None, time.monotonic()
            while time.monotonic() < deadline:
                now = conn.execute(fingerprint_sql).fetchall()
                if now != last:
                    last, since = now, time.monotonic()
                elif time.monotonic() - since >= settle:
                    break
                time.sleep(0.5)
            bookings = conn.execute("SELECT coalesce(sum(won_count), 0), coalesce(sum(contract_value), 0) "
                                    "FROM exec_bookings").fetchone()
            portfolio = conn.execute("SELECT currency, projects, backlog, wip, billed, delivered_value, margin_pct "
                                     "FROM exec_portfolio ORDER BY currency").fetchall()
            # to date, as the executive page gives it: the weeks after the firm's current one have capacity and no
            # time yet (docs/reporting.md, "Utilization to date")
            utilization = conn.execute("SELECT utilization FROM exec_kpis").fetchone()[0]
            dso = conn.execute("SELECT as_of, dso_days FROM exec_dso").fetchone()
    except psycopg.Error as exc:
        return [f"the reporting store is not readable yet: {exc}".strip()]
    lines = [f"from the reporting store: bookings {bookings[0]} won deals worth {bookings[1]:,}"]
    for currency, projects, backlog, wip, billed, delivered, margin in portfolio:
        margin_text = "n/a" if margin is None else f"{margin * 100:.1f}%"
        lines.append(f"  {currency}: {projects} projects, backlog {backlog:,}, delivered {delivered:,}, "
                     f"billed {billed:,}, WIP {wip:,}, margin {margin_text}")
    lines.append("  billable utilization to date: "
                 + ("n/a" if utilization is None else f"{utilization * 100:.1f}%"))
    lines.append("  DSO: " + ("n/a (no closed billing period yet)" if dso is None or dso[1] is None
                              else f"{dso[1]} days as of {dso[0]}"))
    return lines


def _events_on(settings, topics: list[str]) -> int:
    """Records on the topics (high − low watermark, summed over partitions)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**settings.kafka_client_config(), "group.id": "psmesh-demo-summary"})
    try:
        metadata = consumer.list_topics(timeout=10)
        total = 0
        for topic in topics:
            for partition in metadata.topics.get(topic).partitions if topic in metadata.topics else ():
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                total += high - low
        return total
    finally:
        consumer.close()
