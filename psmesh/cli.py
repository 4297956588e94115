"""The ``psmesh`` command line: one entry point for platform engineers."""

from __future__ import annotations

import logging

import click

from psmesh import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


_register()
