"""The four source databases of DOMAIN.md section 1, as SQL kept in schemas/sources/.

The demo firm, the tests and ``psmesh sources create`` (the Docker Compose
``init`` service) create them with :func:`create_source_tables`; at a real firm
they already exist and psmesh only reads them.
"""

from __future__ import annotations

from pathlib import Path

import click
import psycopg

from psmesh.config import SOURCE_DATABASES, Settings
from psmesh.exceptions import SourceTablesError

SQL_DIR = Path(__file__).resolve().parent.parent / "schemas" / "sources"


def source_sql(source: str) -> str:
    if source not in SOURCE_DATABASES:
        raise ValueError(f"unknown source database {source!r}; expected one of {', '.join(SOURCE_DATABASES)}")
    return (SQL_DIR / f"{source}.sql").read_text()


def create_source_tables(settings: Settings, sources: tuple[str, ...] = SOURCE_DATABASES) -> None:
    """Create the DOMAIN.md tables in each source database; harmless when they exist.

    Raises :class:`SourceTablesError` naming the database and server when one cannot be reached or refuses the SQL;
    the databases before it keep their tables (each statement is ``IF NOT EXISTS``, so a rerun finishes the job).
    """
    for source in sources:
        sql = source_sql(source)
        try:
            with psycopg.connect(settings.pg_dsn(source), autocommit=True, connect_timeout=10) as conn:
                conn.execute(sql)
        except psycopg.Error as exc:
            server = f"{settings.pg_host or settings.bind_host}:{settings.pg_port}"
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceTablesError(
                f"cannot create the {source} tables in database {source!r} on {server} as {settings.pg_user}: "
                f"{first_line}"
            ) from exc


@click.group()
def sources() -> None:
    """The source databases' tables (DOMAIN.md section 1), for the demo and Docker Compose."""


@sources.command("create")
@click.option("--source", "names", multiple=True, type=click.Choice(SOURCE_DATABASES),
              help="Only this source database (repeatable; default: all four).")
def create_command(names: tuple[str, ...]) -> None:
    """Create the tables of schemas/sources/*.sql in each source database; harmless when they exist."""
    from psmesh.config import load_settings

    chosen = names or SOURCE_DATABASES
    try:
        create_source_tables(load_settings(), chosen)
    except SourceTablesError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"source tables ready in {', '.join(chosen)}")
