"""``psmesh processors``: run a processor worker (one Faust worker hosts every stage)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from psmesh.cliopts import checked
from psmesh.config import check_worker_url, load_settings, worker_bind, worker_url

logger = logging.getLogger(__name__)


@click.group()
def processors() -> None:
    """The Faust processors: materialized views and derived events."""


@processors.command("run")
@click.option("--web-port", type=click.IntRange(1, 65535), default=lambda: load_settings().processors_port,
              show_default="PSMESH_PROCESSORS_PORT, 6066",
              help="HTTP port of this worker: interactive queries under /views/ and Prometheus /metrics.")
@click.option("--url", callback=checked(check_worker_url), default=lambda: load_settings().processors_url,
              show_default="PSMESH_PROCESSORS_URL, else http://127.0.0.1:<web-port>",
              help="Where the other workers reach this one's --web-port (http://host:port): they forward the view "
                   "queries for the keys it owns there. Set it when workers run on more than one host.")
@click.option("--host", default=None,
              show_default="PSMESH_PROCESSORS_HOST, else the loopback; every interface when --url names another host",
              help="The interface this worker's --web-port listens on. Its views carry the firm's figures and no "
                   "authentication: give 0.0.0.0 only where the network is trusted (a Prometheus elsewhere, say).")
@click.option("--datadir", type=click.Path(path_type=Path), default=None,
              help="Where the worker keeps its RocksDB tables (default: <home>/processors/worker-<port>).")
@click.option("--memory-store", is_flag=True, help="Keep tables in memory instead of RocksDB (tests, benchmarks).")
@click.option("--app-id", default=None, help="Faust app id = consumer group and prefix of internal topics.")
@click.option("--replication-factor", type=int, default=1, show_default=True,
              help="Replication factor of the internal topics (3 on a production cluster).")
@click.option("--event-loop", type=click.Choice(["uvloop", "asyncio"]), default="uvloop", show_default=True,
              help="The worker's event loop: uvloop (libuv, faster) or the standard library's.")
def run_command(web_port: int, url: str | None, host: str | None, datadir: Path | None, memory_store: bool,
                app_id: str | None, replication_factor: int, event_loop: str) -> None:
    """Run one worker; start several to share the partitions (on one host each with its own --web-port, on several
    each with the --url the others reach it at)."""
    host = host or load_settings().processors_host
    try:
        bind = worker_bind(host, worker_url(url, web_port))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from exc
    if event_loop == "uvloop":
        import mode.loop  # faust's own way to choose it: sets asyncio's loop policy before any loop is made

        try:
            mode.loop.use("uvloop")
        except ImportError as exc:
            raise click.UsageError(f"--event-loop uvloop: {exc}; install uvloop, or run with --event-loop "
                                   "asyncio") from exc
    from faust import Worker

    from processors.app import APP_ID, Processors, ensure_internal_topics, tune_gc

    settings = load_settings()
    app_id = app_id or APP_ID
    created = ensure_internal_topics(settings, app_id, replication_factor)
    if created:
        logger.info("created internal topics %s", ", ".join(created))
    built = Processors(settings, web_port=web_port, datadir=datadir, app_id=app_id,
                       store="memory://" if memory_store else "rocksdb://", replication_factor=replication_factor,
                       url=url, host=host)
    tune_gc()
    logger.info("processor worker on %s, listening on %s (views under /views/, metrics at /metrics)",
                built.app.conf.canonical_url, bind)
    Worker(built.app, loglevel="INFO", quiet=True, redirect_stdouts=False).execute_from_commandline()


def _project_codes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for code in values:
        if not code or "|" in code:  # the router refuses such a code: no stage holds it
            raise click.BadParameter(f"{code!r} is not a project code (project_financials.project_code, such as "
                                     "PRJ-42)")
    return values


@processors.command("republish")
@click.option("--stage", "stages", multiple=True, type=click.Choice(["project", "resource", "rollup"]),
              help="Only this stage's views and derived events (repeatable; default: every stage).")
@click.option("--project", "projects", multiple=True, callback=_project_codes, metavar="CODE",
              help="Only this project's views and derived events (a project_code; repeatable).")
@click.option("--resource", "resources", multiple=True, type=int, metavar="ID",
              help="Only this resource's resource_week rows and skill contribution (a resource_id; repeatable).")
@click.option("--app-id", default=None, help="The workers' Faust app id (default: the one `run` uses).")
def republish_command(stages: tuple[str, ...], projects: tuple[str, ...], resources: tuple[int, ...],
                      app_id: str | None) -> None:
    """Have the running workers publish their view rows and current derived events again.

    Once a sink's target is fixed (a constraint that refused a billing trigger, say), the derived events it
    dead-lettered reach it again under the same ids; the sinks keep what they have. With --project or
    --resource, only those rows: `psmesh dlq list` ends with this command and the projects and resources of the
    sinks' letters. The workers do it as they reach the request, after what is queued before it; their log says
    `<stage> stage: partition N re-publishes its views, as asked` (`project stage: project PRJ-42 re-publishes
    ...` for one project).
    """
    from processors.app import APP_ID, STAGE_INPUTS, request_republish
    from processors.exceptions import ProcessorError

    if stages and (projects or resources):
        raise click.UsageError("--stage re-publishes whole stages, --project and --resource single rows of theirs: "
                               "give one or the other")
    settings = load_settings()
    try:
        asked = request_republish(settings, () if projects or resources else stages or tuple(STAGE_INPUTS),
                                  app_id or APP_ID, projects=projects, resources=resources)
    except ProcessorError as exc:
        raise click.ClickException(str(exc)) from exc
    for ask in asked:
        if ask.key is None:
            click.echo(f"asked {ask.topic} partitions {ask.partitions}")
        else:
            click.echo(f"asked {ask.topic} partition {ask.partitions[0]} for {ask.key}")
    click.echo("the workers holding them re-publish as they reach the request")
