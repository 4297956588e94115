"""The project stage derives once per stage message, whatever batches the messages come in (processors/app.py).

A replay after a crash reads the same messages of the repartition topic but may take them in other batches (a
catch-up takes more at a time than a live run). Settled per message, it derives the same events under the same
ids; settled per batch, a rule raised by one message and cleared by the next would have been raised and cleared
by the live run and never by the replay. The sender and encoders here record instead of producing; the store is
Faust's memory store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from processors.app import _TICKET, Processors
from processors.records import dumps
from psmesh.config import Settings

CODE = "PRJ-14"
OPPORTUNITY = {
    "opportunity_id": 14, "account_id": 500, "name": "Opportunity 14", "stage": "closed_won",
    "probability": "100.00", "amount": "10000.00", "currency": "USD", "service_line": "cloud_migration",
    "contract_type": "time_and_materials", "estimated_hours": "1000.00", "target_start_date": "2026-03-02",
    "target_end_date": "2026-06-30", "expected_close_date": "2026-03-20", "closed_at": "2026-03-20T10:00:00+00:00",
}


def _entry(entry_id: int, hours: str, billable: bool = True) -> list:
    row = {"entry_id": entry_id, "resource_id": 7, "project_code": CODE, "role": "consultant",
           "work_date": "2026-03-10", "hours": hours, "billable": billable, "bill_rate": "150.00",
           "cost_rate": "90.00", "status": "approved"}
    return [CODE, "entry", entry_id, row, None]


class _Message:
    topic = "psmesh-processors-by_project-repartition"

    def __init__(self, offset: int) -> None:
        self.partition, self.offset = 0, offset


class _Event:
    def __init__(self, offset: int, items: list) -> None:
        self.message, self.key, self.value = _Message(offset), b"p", dumps(items)


class _Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict]] = []

    def ticket(self):
        return object()

    def produce(self, ticket, topic, key, value, **kwargs):
        pass

    async def wait(self, ticket):
        return {}

    def encoder(self, topic):
        recorder = self

        class _Encoder:
            def key(self, record):
                return b"k"

            def value(self, record):
                recorder.records.append((topic, record))
                return b"v"

        return _Encoder()


def _alerts(tmp_path: Path, batches: list[list[_Event]]) -> list[tuple[str, str]]:
    processors = Processors(Settings(home=tmp_path), web_port=6999, datadir=tmp_path / "data", store="memory://")
    recorder = processors.sender = _Recorder()
    processors.encoder = recorder.encoder

    async def run():
        for events in batches:
            token = _TICKET.set(recorder.ticket())
            try:
                await processors._project_batch(events)
            finally:
                _TICKET.reset(token)

    asyncio.run(run())
    return [(r["event_id"], r["state"]) for topic, r in recorder.records
            if topic == "derived.project_risk_alerts" and r["rule"] == "non_billable"]


def test_two_messages_derive_the_same_alerts_in_one_batch_as_in_two(tmp_path: Path):
    raising = _Event(0, [[CODE, "opportunity", 14, OPPORTUNITY, None], _entry(1, "8.00"),
                         _entry(2, "2.00", billable=False)])  # non-billable 20 %: raised
    clearing = _Event(1, [_entry(3, "0.01")])  # 2 / 10.01: cleared
    apart = _alerts(tmp_path / "apart", [[raising], [clearing]])
    together = _alerts(tmp_path / "together", [[raising, clearing]])
    assert apart == [("PRJ-14-non_billable-raised-1", "raised"), ("PRJ-14-non_billable-cleared-1", "cleared")]
    assert together == apart
