"""``psmesh page``: serve the executive page."""

from __future__ import annotations

import click

from psmesh.config import load_settings


@click.group()
def page() -> None:
    """The executive page: bookings, backlog, utilization, WIP, billed, DSO, margin and staffing gap."""


@page.command()
@click.option("--host", default=lambda: load_settings().bind_host, show_default="PSMESH_BIND_HOST, 127.0.0.1",
              help="Address to listen on.")
@click.option("--port", type=int, default=lambda: load_settings().page_port, show_default="PSMESH_PAGE_PORT, 8090",
              help="HTTP port to listen on.")
@click.option("--dsn", default=None, help="libpq connection string of the reporting database (default: from PSMESH_PG_*).")
def serve(host: str, port: int, dsn: str | None) -> None:
    """Serve the page (/), its figures (/api/summary), /healthz and /metrics until SIGTERM."""
    from psmesh.page.server import run_page
    from psmesh.page.summary import SummaryStore, make_engine

    store = SummaryStore(make_engine(dsn or load_settings().pg_dsn("reporting")))
    try:
        run_page(store, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot serve the page on {host}:{port}: {exc.strerror or exc}") from exc
