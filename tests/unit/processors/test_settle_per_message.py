"""The project stage derives once per stage message, whatever batches the messages come in (processors/app.py).

A replay after a crash reads the same messages of the repartition topic but may take them in other batches (a
catch-up takes more at a time than a live run). Settled per message, it derives the same events under the same
ids; settled per batch, a rule raised by one message and cleared by the next would have been raised and cleared
by the live run and never by the replay. The sender and encoders here record instead of producing; the store is
Faust's memory store (tests/unit/processors/worker_fakes.py).
"""

from __future__ import annotations

from pathlib import Path

from processors.records import dumps, loads
from tests.unit.processors.worker_fakes import FakeEvent, run_batch, worker

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


def _message(offset: int, items: list) -> FakeEvent:
    return FakeEvent("psmesh-processors-by_project-repartition", 0, offset, b"p", dumps(items))


def _alerts(tmp_path: Path, batches: list[list[FakeEvent]]) -> list[tuple[str, str]]:
    processors = worker(tmp_path)
    for events in batches:
        run_batch(processors, processors._project_batch, events)
    return [(r["event_id"], r["state"]) for topic, r in processors.encoder.records
            if topic == "derived.project_risk_alerts" and r["rule"] == "non_billable"]


def test_two_messages_derive_the_same_alerts_in_one_batch_as_in_two(tmp_path: Path):
    raising = _message(0, [[CODE, "opportunity", 14, OPPORTUNITY, None], _entry(1, "8.00"),
                           _entry(2, "2.00", billable=False)])  # non-billable 20 %: raised
    clearing = _message(1, [_entry(3, "0.01")])  # 2 / 10.01: cleared
    apart = _alerts(tmp_path / "apart", [[raising], [clearing]])
    together = _alerts(tmp_path / "together", [[raising, clearing]])
    assert apart == [("PRJ-14-non_billable-raised-1", "raised"), ("PRJ-14-non_billable-cleared-1", "cleared")]
    assert together == apart


def test_a_message_that_changes_no_metadata_still_writes_it_once_with_its_project_rows(tmp_path: Path):
    # A crash can leave the local store ahead of the changelog; the replay finds the metadata unchanged, and only
    # writing it again with every batch that touches the project puts it on the changelog.
    processors = worker(tmp_path)
    changelog = processors.project_rows.changelog_topic.get_topic_name()
    rows = [[CODE, "opportunity", 14, OPPORTUNITY, None], _entry(1, "8.00"), _entry(2, "1.00")]
    run_batch(processors, processors._project_batch, [_message(0, rows)])
    first = len(processors.sender.records)
    run_batch(processors, processors._project_batch, [_message(1, rows[1:])])  # the same entries again
    written = [loads(value) for topic, _, value in processors.sender.records[first:] if topic == changelog]
    metadata = [row for row in written if "triggers" in row]
    assert metadata == [processors.project_stages[0].state(CODE).meta]  # unchanged, and written once
    assert len(written) == 3  # with the two entries
