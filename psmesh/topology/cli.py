"""``psmesh topology``: validate, plan, apply and graph ``topology.yaml``.

Exit codes: 0 success (``plan`` also when it has actions or warnings), 1 an
invalid topology, a failed action or a missing renderer, 2 a usage error or a
cluster that cannot be read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from psmesh.cliopts import checked
from psmesh.config import check_registry_url, load_settings
from psmesh.topology.apply import apply_topology
from psmesh.topology.exceptions import ClusterError, RendererMissingError
from psmesh.topology.graph import lineage, render, to_mermaid
from psmesh.topology.issues import Issue
from psmesh.topology.model import Topology, check_topology
from psmesh.topology.plan import observe, plan_changes

TOPOLOGY_FILE = "topology.yaml"
#: Picture formats by file suffix, for ``graph --output`` without ``--format``.
_FORMATS = {".svg": "svg", ".png": "png", ".mmd": "mermaid"}


def default_topology_path() -> Path:
    """``topology.yaml`` in the current directory, else the repository's."""
    here = Path(TOPOLOGY_FILE)
    if here.exists():
        return here
    repo = Path(__file__).resolve().parents[2] / TOPOLOGY_FILE
    return repo if repo.exists() else here


_file_option = click.option(
    "--file",
    "-f",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Topology file [default: ./topology.yaml, else the repository's].",
)

_cluster_options = [
    click.option(
        "--bootstrap-servers",
        default=lambda: load_settings().bootstrap_servers,
        show_default="PSMESH_KAFKA_BOOTSTRAP or the local broker",
        help="Kafka bootstrap servers.",
    ),
    click.option(
        "--registry-url",
        default=lambda: load_settings().schema_registry_url,
        callback=checked(check_registry_url),
        show_default="PSMESH_REGISTRY_URL or the local registry",
        help="Schema registry URL.",
    ),
    click.option(
        "--cluster",
        envvar="PSMESH_CLUSTER",
        default=None,
        help="Apply this entry of the topology's clusters: section (e.g. local) [env: PSMESH_CLUSTER].",
    ),
    click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait on Kafka requests."),
]


def _with_cluster_options(fn):
    for option in reversed(_cluster_options):
        fn = option(fn)
    return fn


@click.group()
def topology() -> None:
    """Validate, plan, apply and draw the mesh's topology.yaml."""


@topology.command()
@_file_option
def validate(path: Path | None) -> None:
    """Check the topology file; print every error with its line."""
    loaded = _load(path)
    click.echo(f"ok: {loaded.counts()}")


_repartition_option = click.option(
    "--repartition-compacted",
    is_flag=True,
    help="Also add partitions to compacted topics (a key's new records then land on another partition than its "
         "old ones, which compaction never removes): only for topics whose data you will rebuild.",
)


@topology.command()
@_file_option
@_with_cluster_options
@_repartition_option
def plan(path: Path | None, bootstrap_servers: str, registry_url: str, cluster: str | None, timeout: float,
         repartition_compacted: bool) -> None:
    """Show what apply would change in the cluster and the registry (changes nothing)."""
    loaded = _load(path, quiet_ok=True)
    _check_cluster_name(loaded, cluster)
    admin, registry = _clients(bootstrap_servers, registry_url)
    try:
        state = observe(loaded, admin, registry, timeout)
    except ClusterError as exc:
        _cluster_unreadable(bootstrap_servers, exc)
    click.echo(f"plan for {bootstrap_servers} ({state.brokers} broker(s)), registry {registry_url}:")
    for line in plan_changes(loaded, state, cluster, repartition_compacted=repartition_compacted).lines():
        click.echo(f"  {line}")


@topology.command()
@_file_option
@_with_cluster_options
@_repartition_option
def apply(path: Path | None, bootstrap_servers: str, registry_url: str, cluster: str | None, timeout: float,
          repartition_compacted: bool) -> None:
    """Create missing topics, add partitions, set configs, register schemas. Never deletes."""
    loaded = _load(path, quiet_ok=True)
    _check_cluster_name(loaded, cluster)
    admin, registry = _clients(bootstrap_servers, registry_url)
    try:
        the_plan, result = apply_topology(loaded, admin, registry, cluster, timeout,
                                          repartition_compacted=repartition_compacted)
    except ClusterError as exc:
        _cluster_unreadable(bootstrap_servers, exc)
    for warning in the_plan.warnings:
        click.echo(f"! warning: {warning}")
    if the_plan.empty and result.ok:
        click.echo(f"nothing to do: {bootstrap_servers} matches the topology")
        return
    for line in result.done:
        click.echo(f"done: {line}")
    for line in result.failed:
        click.echo(f"failed: {line}", err=True)
    click.echo(f"{len(result.done)} done, {len(result.failed)} failed")
    if not result.ok:
        sys.exit(1)


@topology.command()
@_file_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["svg", "png", "mermaid"]),
    default=None,
    help="Output format [default: from the --output suffix (.svg, .png, .mmd), else svg].",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file [default: topology.svg / topology.png; Mermaid to stdout].",
)
def graph(path: Path | None, fmt: str | None, output: Path | None) -> None:
    """Draw the lineage: sources, topics, processors, sinks and targets."""
    fmt = _graph_format(fmt, output)
    loaded = _load(path, quiet_ok=True)
    drawing = lineage(loaded)
    mermaid = to_mermaid(drawing)
    if fmt == "mermaid":
        if output is None:
            click.echo(mermaid, nl=False)
        else:
            _write(output, mermaid.encode("utf-8"))
            click.echo(f"wrote {output}")
        return
    output = output or Path(f"topology.{fmt}")
    try:
        picture = render(drawing, fmt)
    except RendererMissingError as exc:
        fallback = output.with_suffix(".mmd")
        _write(fallback, mermaid.encode("utf-8"))
        click.echo(f"error: cannot draw {output}: {exc}", err=True)
        click.echo(f"wrote the Mermaid text to {fallback} instead", err=True)
        sys.exit(1)
    _write(output, picture)
    click.echo(f"wrote {output}")


def _graph_format(fmt: str | None, output: Path | None) -> str:
    """``--format``, else the one ``--output``'s suffix names; a picture is never written under another format's suffix."""
    implied = _FORMATS.get(output.suffix.lower()) if output is not None else None
    if fmt is None:
        return implied or "svg"
    if implied is not None and implied != fmt:
        raise click.BadParameter(
            f"{output} has the suffix {output.suffix}, which is not {fmt}; change the suffix or --format",
            param_hint="--output",
        )
    return fmt


def _write(output: Path, data: bytes) -> None:
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise click.FileError(str(output), hint=exc.strerror or str(exc)) from exc


def _load(path: Path | None, quiet_ok: bool = False) -> Topology:
    """The valid topology, every problem printed; exit 1 when it is invalid.

    ``quiet_ok``: for commands whose stdout is their product (a plan, a
    Mermaid graph), warnings go to stderr; ``validate`` prints them as its result.
    """
    if path is None:
        path = default_topology_path()
        if path != Path(TOPOLOGY_FILE):  # not the operator's own file: say which one this is
            click.echo(f"no {TOPOLOGY_FILE} here: using the repository's, {path} (--file to choose)", err=True)
    loaded, issues = check_topology(path)
    for issue in issues:
        if quiet_ok and not issue.is_error:
            click.echo(str(issue), err=True)
        else:
            _echo_issue(issue)
    if loaded is None:
        errors = sum(1 for i in issues if i.is_error)
        click.echo(f"{path}: {errors} error(s)", err=True)
        sys.exit(1)
    return loaded


def _echo_issue(issue: Issue) -> None:
    click.echo(str(issue), err=issue.is_error)


def _check_cluster_name(loaded: Topology, cluster: str | None) -> None:
    if cluster is not None and cluster not in loaded.clusters:
        known = ", ".join(loaded.clusters) or "none declared"
        raise click.BadParameter(f"unknown cluster {cluster!r} (clusters: {known})", param_hint="--cluster")


def _clients(bootstrap_servers: str, registry_url: str) -> tuple[AdminClient, SchemaRegistryClient]:
    conf = load_settings().kafka_client_config()
    conf["bootstrap.servers"] = bootstrap_servers
    # librdkafka would print every failed connection attempt to stderr; the one error that
    # matters is the ClusterError raised when the request times out.
    conf["log_level"] = 0
    return AdminClient(conf), SchemaRegistryClient({"url": registry_url})


def _cluster_unreadable(bootstrap_servers: str, exc: ClusterError) -> NoReturn:
    click.echo(f"error: {bootstrap_servers}: {exc}", err=True)
    sys.exit(2)
