"""The ``psmesh`` command line: one entry point for platform engineers."""

from __future__ import annotations

import logging

import click

from psmesh import __version__
from psmesh.exceptions import SettingsError

logger = logging.getLogger(__name__)


class SettingsProblem(click.ClickException):
    """Bad ``PSMESH_*`` variables: a usage error (exit 2), as a bad option's value is."""

    exit_code = 2


class _Main(click.Group):
    """The root command: the errors any command can meet become one line and an exit code.

    Settings are read from the environment by every command (some in their
    options' defaults), so a wrong ``PSMESH_*`` value is caught here, once, as
    is a server that cannot be reached at all. ``-v`` logs the traceback too.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            raise SettingsProblem("\n".join(exc.problems)) from exc
        except click.ClickException:
            raise
        except Exception as exc:
            message = _unreachable(exc)
            if message is None:
                raise
            logger.debug("%s", message, exc_info=True)
            raise click.ClickException(message) from exc


def _unreachable(exc: Exception) -> str | None:
    """One line for a server that cannot be reached or a client that cannot be built; None for anything else."""
    import psycopg
    from confluent_kafka import KafkaException

    if isinstance(exc, psycopg.OperationalError):
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        return f"PostgreSQL: {first} (PSMESH_PG_HOST, PSMESH_PG_PORT)"
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        text = error.str() if hasattr(error, "str") else str(exc)
        return f"Kafka: {text} (PSMESH_KAFKA_* settings)"
    return None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="psmesh")
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def main(verbose: bool) -> None:
    """psmesh: CDC data mesh for professional-services firms."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The HTTP clients log every request at INFO; that is not worth a human's attention.
    for noisy in ("httpx", "httpx2", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _register() -> None:
    from psmesh.demo import demo
    from psmesh.firm.cli import firm
    from psmesh.page.cli import page
    from psmesh.registry.cli import registry
    from psmesh.stack.cli import dev
    from psmesh.topology.cli import topology
    from streams.cli import cdc
    from processors.cli import processors
    from psmesh.reconcile import reconcile_command
    from psmesh.sources import sources
    from sinks.cli import sink
    from psmesh.status import status_command
    from psmesh.dlq import dlq

    main.add_command(dev)
    main.add_command(topology)
    main.add_command(registry)
    main.add_command(demo)
    main.add_command(cdc)
    main.add_command(firm)
    main.add_command(processors)
    main.add_command(sink)
    main.add_command(page)
    main.add_command(reconcile_command, name="reconcile")
    main.add_command(sources)
    main.add_command(status_command, name="status")
    main.add_command(dlq)


_register()
