"""The worker's /metrics page (processors/app.py ``_metrics_page``)."""

import asyncio

from aiohttp.test_utils import make_mocked_request

from tests.unit.processors.worker_fakes import worker


def _page(processors, path: str) -> str:
    async def get():
        return (await processors._metrics_page(None, make_mocked_request("GET", path))).body.decode()

    return asyncio.run(get())


def test_the_page_gives_every_metric_or_only_the_samples_asked_for(tmp_path):
    processors = worker(tmp_path)
    processors.metrics.events.labels("route").inc(3)
    processors.metrics.events.labels("project").inc(2)

    everything = _page(processors, "/metrics")
    only = _page(processors, "/metrics?name[]=psmesh_processor_events_total")

    for page in (everything, only):
        assert 'psmesh_processor_events_total{stage="route"} 3.0' in page
        assert 'psmesh_processor_events_total{stage="project"} 2.0' in page
    assert "python_gc_collections_total" in everything
    assert "python_gc_collections_total" not in only and "psmesh_processor_dead_letters" not in only
