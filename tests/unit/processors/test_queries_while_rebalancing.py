"""A view query during a rebalance is 503, never a 404 for a row the worker has not rebuilt yet."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.unit.processors.worker_fakes import worker


class Web:
    def json(self, value, status: int = 200):
        return status, value


def test_a_query_while_the_worker_recovers_is_unavailable_not_missing(tmp_path: Path):
    processors = worker(tmp_path)
    processors.published["project_financials"][b"PRJ-7"] = {"project_code": "PRJ-7"}
    processors.app.rebalancing = True  # a new assignment: its tables are recovered, the views not rebuilt yet

    async def ask():
        return (await processors._get_view(Web(), None, "project_financials", "PRJ-8"),
                await processors._list_view(Web(), None, "project_financials"))

    one, listing = asyncio.run(ask())
    assert one[0] == 503 and listing[0] == 503
    processors.app.rebalancing = False

    async def listed():
        return await processors._list_view(Web(), None, "project_financials")

    status, body = asyncio.run(listed())
    assert status == 200 and body["rows"] == [{"project_code": "PRJ-7"}]
