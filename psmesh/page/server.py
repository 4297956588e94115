"""The executive page's HTTP server.

Routes: ``/`` the page (static HTML, CSS and JavaScript, no build step),
``/static/*`` its files, ``/api/summary`` every figure the page shows
(:mod:`psmesh.page.summary`), ``/healthz`` (200 while the reporting store
answers, else 503) and ``/metrics`` (Prometheus).

The page polls ``/api/summary``; concurrent polls within ``cache_seconds``
share one read of the store, so a room full of screens costs one query set.
When the store cannot be read the answer is 503 with a reason and the page
keeps showing the last figures it had.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import exc as sa_exc

from psmesh.page.summary import SummaryStore

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


class PageMetrics:
    """Prometheus metrics of one page server, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "psmesh_page_requests", "HTTP requests served, by route and status.", ["route", "status"],
            registry=self.registry)
        self.summary_seconds = Histogram(
            "psmesh_page_summary_seconds", "Time to read the summary from the reporting store.",
            registry=self.registry)
        self.store_errors = Counter(
            "psmesh_page_store_errors", "Reads of the reporting store that failed.", registry=self.registry)


class CachedSummary:
    """The latest summary, read again at most once per ``cache_seconds`` whoever asks."""

    def __init__(self, store: SummaryStore, metrics: PageMetrics, cache_seconds: float = 1.0) -> None:
        self.store = store
        self.metrics = metrics
        self.cache_seconds = cache_seconds
        self._lock = asyncio.Lock()
        self._value: dict[str, Any] | None = None
        self._read_at = float("-inf")

    async def get(self) -> dict[str, Any]:
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at >= self.cache_seconds:
                started = time.perf_counter()
                try:
                    self._value = await asyncio.to_thread(self.store.read)
                except sa_exc.SQLAlchemyError:
                    self.metrics.store_errors.inc()
                    raise
                self._read_at = time.monotonic()
                self.metrics.summary_seconds.observe(time.perf_counter() - started)
            return self._value


SUMMARY_KEY = web.AppKey("summary", CachedSummary)
METRICS_KEY = web.AppKey("metrics", PageMetrics)

routes = web.RouteTableDef()


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@routes.get("/api/summary")
async def summary(request: web.Request) -> web.Response:
    try:
        data = await request.app[SUMMARY_KEY].get()
    except sa_exc.SQLAlchemyError as exc:
        logger.warning("reporting store not readable: %s", type(exc).__name__)
        return web.json_response({"error": f"the reporting store cannot be read ({type(exc).__name__})"}, status=503)
    return web.json_response(data, headers={"Cache-Control": "no-store"})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    try:
        await asyncio.to_thread(request.app[SUMMARY_KEY].store.ping)
    except sa_exc.SQLAlchemyError as exc:
        return web.json_response({"status": "unhealthy", "store": type(exc).__name__}, status=503)
    return web.json_response({"status": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def _count(request: web.Request, handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        request.app[METRICS_KEY].requests.labels(route, str(exc.status)).inc()
        raise
    request.app[METRICS_KEY].requests.labels(route, str(response.status)).inc()
    return response


def create_app(store: SummaryStore, cache_seconds: float = 1.0) -> web.Application:
    app = web.Application(middlewares=[_count])
    page_metrics = PageMetrics()
    app[METRICS_KEY] = page_metrics
    app[SUMMARY_KEY] = CachedSummary(store, page_metrics, cache_seconds)
    app.add_routes(routes)
    app.router.add_static("/static", STATIC_DIR)
    return app


async def serve_page(store: SummaryStore, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    runner = web.AppRunner(create_app(store), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        logger.info("executive page on http://%s:%d/", host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        logger.info("executive page stopping")
    finally:
        await runner.cleanup()
        store.close()


def run_page(store: SummaryStore, host: str, port: int) -> None:
    asyncio.run(serve_page(store, host, port))
