"""``psmesh dev``: the local stack for development, demos and CI."""

from __future__ import annotations

import json
import sys

import click

from psmesh.config import load_settings
from psmesh.stack.exceptions import StackError
from psmesh.stack.kafka import ensure_jars
from psmesh.stack.local import LocalStack


@click.group()
def dev() -> None:
    """Run Kafka, PostgreSQL and the schema registry as local processes."""


@dev.command()
def up() -> None:
    """Start every part that is not running; harmless when all are up."""
    stack = LocalStack(load_settings())

    def progress(name: str, what: str, seconds: float) -> None:
        click.echo(f"{name:13} {what} ({seconds:.1f}s)")

    try:
        stack.up(progress=progress)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_status(stack)


@dev.command()
def down() -> None:
    """Stop every part; leaves no process behind."""
    stack = LocalStack(load_settings())
    for name, was_running in stack.down().items():
        click.echo(f"{name:13} {'stopped' if was_running else 'was not running'}")


@dev.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Health, address and log file of each part; exit 1 unless all are healthy."""
    stack = LocalStack(load_settings())
    ok = _print_status(stack, as_json=as_json)
    sys.exit(0 if ok else 1)


@dev.command("fetch")
def fetch() -> None:
    """Fetch the Kafka broker's jars from Maven Central into the cache."""
    try:
        libs = ensure_jars(load_settings())
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"kafka jars in {libs}")


def _print_status(stack: LocalStack, as_json: bool = False) -> bool:
    parts = stack.status()
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in parts], indent=2))
    else:
        click.echo(f"{'part':13} {'state':9} {'address':24} log")
        for p in parts:
            click.echo(f"{p.name:13} {p.state:9} {p.address:24} {p.log}")
    return all(p.healthy for p in parts)
