"""The router sends a stage only the last version of a row in its batch (processors/app.py ``_route_batch``), except
for the kinds of which every version derives something. It decodes and checks only that last version (and an earlier
one when the last cannot be read); of the earlier versions it checks the frame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from processors.app import PARTITIONS, Processors
from processors.batch import stage_partition
from processors.records import KINDS, loads
from tests.unit.processors.worker_fakes import FakeEvent, RecordingSender, run_batch, worker

BY_PROJECT = "psmesh-processors-by_project-repartition"
BY_RESOURCE = "psmesh-processors-by_resource-repartition"


class JsonDecoder:
    """The change events of these tests are their envelopes as JSON; anything else is undecodable. Their frame is
    JSON's opening brace; the values it decoded are counted."""

    def __init__(self) -> None:
        self.decoded: list[bytes] = []

    def known(self, value: bytes) -> bool:
        return value.startswith(b"{")

    def decode(self, value: bytes | None, kind: str) -> dict[str, Any] | None:
        if value is not None:
            self.decoded.append(value)
        return None if value is None else json.loads(value)


def entry(entry_id: int, status: str, project_code: str = "PRJ-1", hours: str = "8.00") -> dict[str, Any]:
    return {"entry_id": entry_id, "resource_id": 12, "project_code": project_code, "role": "consultant",
            "work_date": "2026-03-02", "hours": hours, "billable": True, "bill_rate": "150.00",
            "cost_rate": "80.00", "status": status}


def change(kind: str, after: dict[str, Any] | None, offset: int, op: str = "u",
           before: dict[str, Any] | None = None) -> FakeEvent:
    envelope = {"op": op, "after": after, "before": before, "source": {"ts_ms": 1_700_000_000_000 + offset}}
    topic, pk_column = KINDS[kind][0], KINDS[kind][1]
    return FakeEvent(topic, 0, offset, key_of((after or before)[pk_column]), json.dumps(envelope).encode())


def key_of(pk: Any) -> bytes:
    """A change event's key: its primary key (the capture's is Avro in Confluent's frame)."""
    return f"pk={pk}".encode()


def forwarded(sender: RecordingSender, topic: str) -> dict[int, list[list[Any]]]:
    """Stage partition → the rows the router sent it, in order."""
    out: dict[int, list[list[Any]]] = {}
    for t, partition, value in sender.records:
        if t == topic:
            out.setdefault(partition, []).extend(loads(value))
    return out


def routing(tmp_path: Path, events: list[FakeEvent]) -> Processors:
    processors = worker(tmp_path)
    processors._decoder = JsonDecoder()
    run_batch(processors, processors._route_batch, events)
    return processors


def route(tmp_path: Path, events: list[FakeEvent]) -> RecordingSender:
    return routing(tmp_path, events).sender


def test_only_the_last_version_of_a_row_in_a_batch_reaches_its_stages(tmp_path: Path):
    sender = route(tmp_path, [change("entry", entry(1, "submitted"), 0, "c"),
                              change("entry", entry(2, "submitted"), 1, "c"),
                              change("entry", entry(1, "approved"), 2),
                              change("entry", entry(1, "approved", hours="7.50"), 3)])
    project = forwarded(sender, BY_PROJECT)[stage_partition(b"PRJ-1", PARTITIONS)]
    assert [(r[2], r[3]["status"], r[3]["hours"]) for r in project] == [(2, "submitted", "8.00"),
                                                                          (1, "approved", "7.50")]
    resource = forwarded(sender, BY_RESOURCE)[stage_partition(b"12", PARTITIONS)]
    assert [(r[2], r[3]["hours"]) for r in resource] == [(2, "8.00"), (1, "7.50")]


def test_a_row_that_moves_twice_in_a_batch_reaches_only_its_last_owner(tmp_path: Path):
    sender = route(tmp_path, [change("entry", entry(1, "submitted", "PRJ-1"), 0, "c"),
                              change("entry", entry(1, "submitted", "PRJ-2"), 1)])
    rows = [row for rows in forwarded(sender, BY_PROJECT).values() for row in rows]
    assert [(r[0], r[2]) for r in rows] == [("PRJ-2", 1)]


def test_a_row_inserted_and_deleted_in_a_batch_reaches_no_stage(tmp_path: Path):
    sender = route(tmp_path, [change("entry", entry(1, "submitted"), 0, "c"),
                              change("entry", None, 1, "d", before={"entry_id": 1}),
                              FakeEvent(KINDS["entry"][0], 0, 2, key_of(1), None)])  # the tombstone
    assert forwarded(sender, BY_PROJECT) == {} and forwarded(sender, BY_RESOURCE) == {}


def test_every_version_of_a_billing_milestone_reaches_its_stage(tmp_path: Path):
    # each version may bill: the trigger is derived from the row, not from the state a message leaves
    milestone = {"milestone_id": 5, "project_code": "PRJ-1", "amount": "1000.00"}
    sender = route(tmp_path, [change("billing_milestone", {**milestone, "status": "completed"}, 0),
                              change("billing_milestone", {**milestone, "status": "invoiced"}, 1)])
    rows = forwarded(sender, BY_PROJECT)[stage_partition(b"PRJ-1", PARTITIONS)]
    assert [r[3]["status"] for r in rows] == ["completed", "invoiced"]


def test_only_the_last_version_of_a_row_is_decoded(tmp_path: Path):
    first, last = change("entry", entry(1, "submitted"), 0, "c"), change("entry", entry(1, "approved"), 1)
    other = change("entry", entry(2, "submitted"), 2, "c")
    processors = routing(tmp_path, [first, last, other])
    assert processors.decoder.decoded == [last.value, other.value]


def test_an_earlier_version_whose_frame_is_known_is_not_checked_further(tmp_path: Path):
    # it changes nothing: the last version replaces it, as it would had it been read
    unreadable = FakeEvent(KINDS["entry"][0], 0, 0, key_of(1), json.dumps({"op": "u", "after": None}).encode())
    sender = route(tmp_path, [unreadable, change("entry", entry(1, "approved"), 1)])
    assert sender.produced().count("dlq.processors") == 0
    assert [r[2] for r in forwarded(sender, BY_PROJECT)[stage_partition(b"PRJ-1", PARTITIONS)]] == [1]


def test_an_earlier_version_in_a_frame_not_read_before_is_decoded_and_dead_lettered(tmp_path: Path):
    foreign = FakeEvent(KINDS["entry"][0], 0, 0, key_of(1), b"\x01 not a change event")
    sender = route(tmp_path, [foreign, change("entry", entry(1, "approved"), 1)])
    assert sender.produced().count("dlq.processors") == 1
    assert [r[2] for r in forwarded(sender, BY_PROJECT)[stage_partition(b"PRJ-1", PARTITIONS)]] == [1]


def test_when_the_last_version_cannot_be_read_the_one_before_it_is_routed(tmp_path: Path):
    unreadable = FakeEvent(KINDS["entry"][0], 0, 2, key_of(1), json.dumps({"op": "u", "after": None}).encode())
    sender = route(tmp_path, [change("entry", entry(1, "submitted"), 0, "c"),
                              change("entry", entry(1, "approved", hours="7.50"), 1), unreadable])
    assert sender.produced().count("dlq.processors") == 1
    rows = forwarded(sender, BY_PROJECT)[stage_partition(b"PRJ-1", PARTITIONS)]
    assert [(r[2], r[3]["status"], r[3]["hours"]) for r in rows] == [(1, "approved", "7.50")]


def test_versions_of_other_rows_under_the_same_key_are_all_routed(tmp_path: Path):
    # the same key on two topics is two rows
    sender = route(tmp_path, [change("entry", entry(1, "approved"), 0, "c"),
                              change("expense", {"expense_id": 1, "project_code": "PRJ-1", "expense_date": "2026-03-02",
                                                 "amount": "10.00", "billable": True, "status": "approved"}, 1, "c")])
    rows = forwarded(sender, BY_PROJECT)[stage_partition(b"PRJ-1", PARTITIONS)]
    assert [(r[1], r[2]) for r in rows] == [("entry", 1), ("expense", 1)]


def test_versions_of_a_row_on_both_sides_of_a_period_close_are_both_routed(tmp_path: Path):
    # the close bills the entry as it was then: its version before the close must reach the stage before the close
    period = {"period_id": 3, "start_date": "2026-03-01", "end_date": "2026-03-31", "status": "closed"}
    sender = route(tmp_path, [change("entry", entry(1, "approved"), 0, "c"), change("period", period, 1),
                              change("entry", entry(1, "approved", hours="7.50"), 2),
                              change("entry", entry(1, "approved", hours="7.00"), 3)])
    rows = forwarded(sender, BY_PROJECT)[stage_partition(b"PRJ-1", PARTITIONS)]
    assert [(r[1], r[3].get("hours")) for r in rows] == [("entry", "8.00"), ("period", None), ("entry", "7.00")]


def test_the_versions_left_out_are_counted(tmp_path: Path):
    processors = routing(tmp_path, [change("entry", entry(1, "submitted"), 0, "c"),
                                    change("entry", entry(1, "approved"), 1),
                                    change("entry", entry(2, "approved"), 2, "c")])
    assert processors.metrics.registry.get_sample_value("psmesh_processor_coalesced_total") == 1


def test_a_project_code_with_a_bar_is_dead_lettered_not_mirrored(tmp_path: Path):
    # The stages' mirror keys are partition|code|kind|id: such a code would break every rebuild of the partition.
    sender = route(tmp_path, [change("entry", entry(1, "approved", "PRJ|9"), 0, "c"),
                              change("entry", entry(2, "approved", "PRJ-9"), 1, "c")])
    assert [(r[0], r[2]) for rows in forwarded(sender, BY_PROJECT).values() for r in rows] == [("PRJ-9", 2)]
    assert "dlq.processors" in sender.produced()


def test_a_row_whose_week_dates_cannot_be_counted_is_dead_lettered_before_any_stage_holds_it(tmp_path: Path, caplog):
    """A null work_date or assignment end (DOMAIN.md has them required), a date past 9999-12-24: refused by the router,
    so that no stage folds, mirrors or rebuilds from it (a null end date made every later row of the resource fail,
    and its rebuild with them)."""
    assignment = {"assignment_id": 5, "resource_id": 12, "project_code": "PRJ-1", "opportunity_id": 1,
                  "role": "consultant", "start_date": "2026-03-02", "end_date": None, "hours_per_week": "20.00",
                  "status": "confirmed"}
    processors = routing(tmp_path, [
        change("entry", {**entry(1, "approved"), "work_date": None}, 0, "c"),
        change("entry", {**entry(2, "approved"), "work_date": "9999-12-31"}, 1, "c"),
        change("assignment", assignment, 2, "c"),
        change("entry", entry(3, "approved"), 3, "c")])
    rows = [(r[1], r[2]) for topic in (BY_PROJECT, BY_RESOURCE)
            for rows in forwarded(processors.sender, topic).values() for r in rows]
    assert rows == [("entry", 3), ("entry", 3)]  # the good entry, to its project and its resource
    assert len([topic for topic, _, _ in processors.sender.records if topic == "dlq.processors"]) == 3
    reasons = "\n".join(r.getMessage() for r in caplog.records if r.getMessage().startswith("dead letter from route"))
    assert "work_date is null" in reasons and "work_date 9999-12-31 is past 9999-12-24" in reasons
    assert "public.assignments: end_date is null" in reasons


def test_an_opportunity_of_a_contract_type_outside_the_domain_is_dead_lettered_before_any_stage_holds_it(
        tmp_path: Path, caplog):
    """Held by its project stage, such an opportunity made every period close of the partition fail, and with it the
    billing of every other project there."""
    def opportunity(oid: int, contract_type: str) -> dict[str, Any]:
        return {"opportunity_id": oid, "account_id": 5, "name": "deal", "stage": "closed_won", "probability": "100",
                "amount": "1000.00", "currency": "EUR", "service_line": "security", "contract_type": contract_type,
                "estimated_hours": "10.00", "target_start_date": "2026-03-02", "target_end_date": "2026-06-30",
                "expected_close_date": "2026-03-01", "closed_at": "2026-03-01T10:00:00+00:00"}

    processors = routing(tmp_path, [change("opportunity", opportunity(1, "retainer"), 0, "c"),
                                    change("opportunity", opportunity(2, "fixed_fee"), 1, "c")])
    rows = [(r[1], r[2]) for rows in forwarded(processors.sender, BY_PROJECT).values() for r in rows]
    assert rows == [("opportunity", 2)]
    assert len([topic for topic, _, _ in processors.sender.records if topic == "dlq.processors"]) == 1
    reasons = "\n".join(r.getMessage() for r in caplog.records if r.getMessage().startswith("dead letter from route"))
    assert "contract_type 'retainer' is none of fixed_fee, time_and_materials" in reasons
