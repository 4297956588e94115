"""Serving a process's Prometheus metrics, with an error that says which port and why."""

from __future__ import annotations

import click
from prometheus_client import start_http_server

from psmesh.config import load_settings


def serve_metrics(port: int | None, service: str) -> None:
    """Serve the default registry on ``port`` (on PSMESH_METRICS_HOST, all interfaces by default); 0/None: none."""
    if not port:
        return
    host = load_settings().metrics_host
    if not 0 < port <= 65535:
        raise click.ClickException(
            f"{service}: cannot serve metrics on port {port}: a port is 1 to 65535; choose another with "
            "--metrics-port or the PSMESH_* variable of this service, or 0 for none")
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise click.ClickException(
            f"{service}: cannot serve metrics on {host}:{port} ({exc.strerror or exc}); "
            "choose another port with --metrics-port or the PSMESH_* variable of this service, or 0 for none"
        ) from exc
