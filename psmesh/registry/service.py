"""The registry process: read the topic, serve HTTP, stop cleanly on SIGTERM.

Start-up order is what makes a restart safe: the topic is created if absent
and read to its end *before* the HTTP port opens, so no request is ever
answered from a partial index.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from psmesh.registry.app import create_app
from psmesh.registry.store import KafkaRecordLog, SchemaStore

logger = logging.getLogger(__name__)


async def serve_registry(client_config: dict[str, str], host: str, port: int, topic: str) -> None:
    """Run the registry until SIGTERM or SIGINT; raises StoreError if Kafka is unusable."""
    log = KafkaRecordLog(client_config, topic)
    await asyncio.to_thread(log.ensure_topic)
    store = SchemaStore(log)
    await store.start()
    runner = web.AppRunner(create_app(store), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        logger.info(
            "schema registry listening on http://%s:%d, %d schemas loaded",
            host,
            bound,
            store.index.schema_count,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        logger.info("schema registry stopping")
    finally:
        await runner.cleanup()
        await store.close()


def run_registry(client_config: dict[str, str], host: str, port: int, topic: str) -> None:
    asyncio.run(serve_registry(client_config, host, port, topic))
