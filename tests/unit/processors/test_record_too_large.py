"""A view or derived record the client refuses for its size goes to the dead-letter topic with the row that caused
it; sending it again could not help (processors/sender.py, processors/app.py ``_emit``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from processors.batch import Cause, Outbox
from processors.sender import DeliveryFailed, RecordTooLarge, Sender
from tests.unit.processors.worker_fakes import FakeEvent, RecordingSender, run_batch, worker


def test_the_sender_says_which_record_the_client_refuses_for_its_size():
    sender = Sender({"bootstrap.servers": "127.0.0.1:1"})  # the size is checked before any broker is reached

    async def produce():
        sender.produce(sender.ticket(), "views.project_financials", b"k", b"x" * (2 * 1024 * 1024))

    try:
        with pytest.raises(RecordTooLarge, match=r"views\.project_financials: a record of 2097152 bytes"):
            asyncio.run(produce())
    finally:
        sender._stopping.set()
    assert issubclass(RecordTooLarge, DeliveryFailed)  # anywhere else, still an error of the batch


def test_a_view_record_too_large_to_send_dead_letters_its_cause_and_the_batch_goes_on(tmp_path: Path):
    # librdkafka refuses the view record, as one over 1 MB
    refused = lambda topic: RecordTooLarge(f"{topic}: a record of 1048577 bytes") if topic.startswith("views.") else None
    processors = worker(tmp_path, RecordingSender(refuse=refused))
    out = Outbox()
    event = FakeEvent("psmesh-processors-by_project-repartition", 2, 41)
    cause = Cause(event, None, None, None, ["PRJ-1", "line", 7, {"line_id": 7}, None])  # a row as _items gives it
    out.views[("pipeline", b"cloud|2026-04-01")] = [("cloud", "2026-04-01"), {"service_line": "cloud"}, cause, False]
    out.events.append(("derived.project_requests", {"project_code": "PRJ-1"}, {"event_id": "PRJ-1-abc"}, cause))

    run_batch(processors, processors._flush, "project", out)
    assert processors.sender.produced() == ["dlq.processors", "derived.project_requests"]
    [letter] = [record for topic, record in processors.encoder.records if topic == "dlq.processors"]
    assert letter["key"] == b"PRJ-1" and letter["stage"] == "project"  # the row's stage key, from its item
    assert json.loads(letter["value"]) == ["PRJ-1", "line", 7, {"line_id": 7}, None]


def test_a_forwarded_row_too_large_for_any_message_dead_letters_its_change_event_and_the_rest_goes_on(
        tmp_path: Path):
    from tests.unit.processors.test_route_coalesce import BY_PROJECT, JsonDecoder, change, forwarded

    # the client refuses a message over 1 MB; a row that large is sent alone (processors/batch.py, messages)
    sender = RecordingSender()
    processors = worker(tmp_path, sender)
    processors._decoder = JsonDecoder()
    columns = ("opportunity_id", "account_id", "name", "stage", "probability", "amount", "currency", "service_line",
               "contract_type", "estimated_hours", "target_start_date", "target_end_date", "expected_close_date",
               "closed_at")

    def opportunity(oid: int, name: str) -> dict:
        return {**dict.fromkeys(columns), "opportunity_id": oid, "name": name, "stage": "qualification",
                "contract_type": "fixed_fee"}

    events = [change("opportunity", opportunity(1, "x" * 1_100_000), 0, "c"),
              change("opportunity", opportunity(2, "Cloud move"), 1, "c")]
    original = sender.produce

    def produce(ticket, topic, key, value, **kwargs):
        if topic == BY_PROJECT and len(value) > 1_000_000:
            raise RecordTooLarge(f"{topic}: a record of {len(value)} bytes")
        return original(ticket, topic, key, value, **kwargs)

    sender.produce = produce
    run_batch(processors, processors._route_batch, events)
    assert [(r[1], r[2]) for rows in forwarded(sender, BY_PROJECT).values() for r in rows] == [("opportunity", 2)]
    [letter] = [record for topic, record in processors.encoder.records if topic == "dlq.processors"]
    assert (letter["stage"], letter["offset"]) == ("route", 0) and "RecordTooLarge" in letter["reason"]
