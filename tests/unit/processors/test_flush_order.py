"""A batch's outputs reach the broker before its mirror records the change (processors/app.py, _flush).

Had the mirror recorded a change whose outputs a crash then cut off (a view row's deletion, say), the replay would
find nothing changed and never send them: the order is what makes a kill -9 harmless. The sender here records the
calls instead of producing; the store is Faust's memory store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from processors.app import _TICKET, Processors
from processors.batch import Cause, Outbox
from psmesh.config import Settings


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def ticket(self):
        return object()

    def produce(self, ticket, topic, key, value, **kwargs):
        self.calls.append(("produce", topic))

    async def wait(self, ticket):
        self.calls.append(("wait", ""))
        return {}


class _Message:
    partition, topic, offset = 0, "psmesh-processors-rollup-repartition", 0


class _Event:
    message = _Message()


class _Encoder:
    def key(self, record):
        return b"k"

    def value(self, record):
        return b"v"


def test_views_and_derived_events_are_on_the_broker_before_the_mirror_is_written(tmp_path: Path):
    processors = Processors(Settings(home=tmp_path), web_port=6999, datadir=tmp_path / "data", store="memory://")
    recorder = processors.sender = _Recorder()
    processors.encoder = lambda topic: _Encoder()
    processors.published["pipeline"][b"cloud|2026-04-01"] = {"service_line": "cloud"}
    out = Outbox()
    cause = Cause(_Event(), None, None)
    out.write("rollup_rows", b"opp|7", _Event(), None)  # the contribution goes away...
    out.views[("pipeline", b"cloud|2026-04-01")] = [("cloud", "2026-04-01"), None, cause, False]  # ...its row too
    out.events.append(("derived.project_risk_alerts", {"k": 1}, {"v": 1}, cause))
    processors.tables["rollup_rows"].data[b"opp|7"] = b"{}"

    async def flush():
        token = _TICKET.set(recorder.ticket())
        try:
            await processors._flush("rollup", out)
        finally:
            _TICKET.reset(token)

    asyncio.run(flush())
    topics = [topic for call, topic in recorder.calls]
    assert recorder.calls[:3] == [("produce", "views.pipeline"), ("produce", "derived.project_risk_alerts"),
                                  ("wait", "")]
    assert topics[3:] == [processors.rollup_rows.changelog_topic.get_topic_name()]
    assert b"opp|7" not in processors.tables["rollup_rows"].data  # and the store after the outputs too
