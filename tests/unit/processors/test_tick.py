"""After a rebuild the worker ticks the stage partitions it holds, and a tick re-publishes its partition at once;
the request of ``psmesh processors republish`` re-publishes a partition whenever it comes.

The broker is left out (the sender records, the consumer's assignment is given); the restart on the real broker
is tests/integration/test_processors.py, step 4.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal as D

from faust.types import TP

from processors.app import REPUBLISH_KEY, REPUBLISH_ONE, TICK, TICK_KEY
from processors.formulas import Resource, TimeOff
from processors.records import dumps
from tests.unit.processors.worker_fakes import FakeEvent, RecordingSender, run_batch, worker


class TickingSender(RecordingSender):
    def __init__(self) -> None:
        super().__init__()
        self.ticks: list[tuple[str, bytes | None, bytes | None, int]] = []

    def send_now(self, topic: str, key: bytes | None, value: bytes | None, partition: int) -> None:
        self.ticks.append((topic, key, value, partition))


class Assigned:
    def __init__(self, *tps: TP) -> None:
        self.tps = set(tps)

    def assignment(self) -> set[TP]:
        return self.tps


def test_a_rebuild_ticks_only_the_partitions_of_the_rebuilt_stage_that_the_worker_holds(tmp_path):
    sender = TickingSender()
    w = worker(tmp_path, sender)
    projects, resources, rollup = (t.get_topic_name() for t in (w.by_project, w.by_resource, w.to_rollup))
    w.app._consumer = Assigned(TP(projects, 4), TP(projects, 1), TP(resources, 2), TP("psa.public.resources", 1))

    w._republish_later("project", range(6), [])
    assert sender.ticks == [(projects, TICK_KEY, TICK, 1), (projects, TICK_KEY, TICK, 4)]
    w._republish_later("rollup", (0,), [w.rollup_stage])  # partition 0 of the rollup is another worker's
    assert len(sender.ticks) == 2
    w._republish_later("resource", range(6), [])
    assert sender.ticks[2:] == [(resources, TICK_KEY, TICK, 2)]
    assert rollup not in {t[0] for t in sender.ticks}


def test_outside_a_running_worker_there_is_nothing_to_tick(tmp_path):
    sender = TickingSender()
    w = worker(tmp_path, sender)
    assert getattr(w.app, "_consumer", None) is None
    w._republish_later("project", range(6), [])
    assert sender.ticks == []


def test_the_tick_republishes_its_partition_s_rows_and_is_read_as_a_message_without_rows(tmp_path):
    sender = TickingSender()
    w = worker(tmp_path, sender)
    resources = w.by_resource.get_topic_name()
    w.app._consumer = Assigned(TP(resources, 3))
    stage = w._resource_stage(3)
    stage.load(7, "resource", 7, Resource(7, "aws", D("40.00"), True, date(2026, 3, 2)))
    stage.load(7, "time_off", 1, TimeOff(1, 7, date(2026, 3, 3), date(2026, 3, 4), D("8.00"), "approved"))
    w._republish_later("resource", range(6), w.resource_stages.values())
    assert sender.ticks == [(resources, TICK_KEY, TICK, 3)]
    assert w.published["resource_week"]  # served to queries from the rebuild on

    rows = run_batch(w, w._resource_batch, [FakeEvent(resources, partition=3, offset=0, key=TICK_KEY, value=TICK)])
    assert rows == 0
    assert [(topic, record["resource_id"], record["week_start"]) for topic, record in w.encoder.records] == [
        ("views.resource_week", 7, date(2026, 3, 2))]
    assert ("resource", 3) not in w._fresh
    assert "dlq.processors" not in sender.produced()

    # the partition's next message republishes nothing that has not changed
    w.encoder.records.clear()
    run_batch(w, w._resource_batch, [FakeEvent(resources, partition=3, offset=1, key=TICK_KEY, value=TICK)])
    assert w.encoder.records == []


def test_a_republish_request_republishes_its_partition_whenever_it_comes_and_only_its_partition(tmp_path):
    w = worker(tmp_path, TickingSender())
    resources = w.by_resource.get_topic_name()
    for partition, rid in ((3, 7), (4, 8)):
        stage = w._resource_stage(partition)
        stage.load(rid, "resource", rid, Resource(rid, "aws", D("40.00"), True, date(2026, 3, 2)))
        stage.load(rid, "time_off", rid, TimeOff(rid, rid, date(2026, 3, 3), date(2026, 3, 4), D("8.00"), "approved"))
    w._republish_later("resource", range(6), w.resource_stages.values())
    run_batch(w, w._resource_batch, [FakeEvent(resources, partition=p, offset=0, key=TICK_KEY, value=TICK)
                                     for p in (3, 4)])
    assert sorted(record["resource_id"] for _, record in w.encoder.records) == [7, 8]
    w.encoder.records.clear()

    run_batch(w, w._resource_batch, [FakeEvent(resources, partition=3, offset=1, key=TICK_KEY, value=TICK)])
    assert w.encoder.records == []  # a tick on a partition already re-published: nothing unchanged goes out
    rows = run_batch(w, w._resource_batch, [FakeEvent(resources, partition=3, offset=2, key=REPUBLISH_KEY,
                                                      value=TICK)])
    assert rows == 0
    assert [(topic, record["resource_id"]) for topic, record in w.encoder.records] == [("views.resource_week", 7)]
    w.encoder.records.clear()
    run_batch(w, w._resource_batch, [FakeEvent(resources, partition=3, offset=3, key=REPUBLISH_KEY, value=TICK)])
    assert [(topic, record["resource_id"]) for topic, record in w.encoder.records] == [("views.resource_week", 7)]


def _opportunity(opportunity_id: int) -> dict:
    return {"opportunity_id": opportunity_id, "account_id": 500, "name": f"Opportunity {opportunity_id}",
            "stage": "closed_won", "probability": "100.00", "amount": "10000.00", "currency": "USD",
            "service_line": "cloud_migration", "contract_type": "time_and_materials", "estimated_hours": "1000.00",
            "target_start_date": "2026-03-02", "target_end_date": "2026-06-30", "expected_close_date": "2026-03-20",
            "closed_at": "2026-03-20T10:00:00+00:00"}


def test_a_request_for_one_project_republishes_that_project_only(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="processors.app")
    w = worker(tmp_path, TickingSender())
    projects = w.by_project.get_topic_name()
    rows = [[f"PRJ-{i}", kind, ident, row, None] for i in (14, 15) for kind, ident, row in (
        ("opportunity", i, _opportunity(i)),
        ("billing_milestone", i, {"milestone_id": i, "project_code": f"PRJ-{i}", "amount": "1000.00",
                                  "status": "completed"}))]
    run_batch(w, w._project_batch, [FakeEvent(projects, partition=0, offset=0, key=b"p", value=dumps(rows))])
    assert {(t, r["project_code"]) for t, r in w.encoder.records if t != "views.project_risks"} >= {
        ("views.project_financials", "PRJ-14"), ("derived.billing_triggers", "PRJ-14"),
        ("views.project_financials", "PRJ-15"), ("derived.billing_triggers", "PRJ-15")}
    w.encoder.records.clear()

    rows = run_batch(w, w._project_batch, [FakeEvent(projects, partition=0, offset=1, key=REPUBLISH_ONE + b"PRJ-15",
                                                     value=TICK)])
    assert rows == 0
    assert sorted((t, r.get("project_code")) for t, r in w.encoder.records) == [
        ("derived.billing_triggers", "PRJ-15"), ("views.project_financials", "PRJ-15")]
    assert "project stage: project PRJ-15 re-publishes its views, as asked" in caplog.text

    w.encoder.records.clear()
    run_batch(w, w._project_batch, [FakeEvent(projects, partition=0, offset=2, key=REPUBLISH_ONE + b"PRJ-99",
                                              value=TICK)])
    assert w.encoder.records == []
    assert "project stage: partition 0 holds no project 'PRJ-99'; nothing to re-publish" in caplog.text


def test_a_request_for_one_resource_republishes_its_weeks_only(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="processors.app")
    w = worker(tmp_path, TickingSender())
    resources = w.by_resource.get_topic_name()
    stage = w._resource_stage(3)
    for rid in (7, 8):
        stage.load(rid, "resource", rid, Resource(rid, "aws", D("40.00"), True, date(2026, 3, 2)))
        stage.load(rid, "time_off", rid, TimeOff(rid, rid, date(2026, 3, 3), date(2026, 3, 4), D("8.00"), "approved"))
    run_batch(w, w._resource_batch, [FakeEvent(resources, partition=3, offset=0, key=REPUBLISH_ONE + b"8",
                                               value=TICK)])
    assert [(topic, record["resource_id"]) for topic, record in w.encoder.records] == [("views.resource_week", 8)]
    assert "resource stage: resource 8 re-publishes its views, as asked" in caplog.text

    w.encoder.records.clear()
    for key in (b"9", b"nine"):
        run_batch(w, w._resource_batch, [FakeEvent(resources, partition=3, offset=1, key=REPUBLISH_ONE + key,
                                                   value=TICK)])
    assert w.encoder.records == []
    assert "resource stage: partition 3 holds no resource 'nine'; nothing to re-publish" in caplog.text


def test_a_rebuild_folds_only_the_partitions_the_worker_was_assigned(tmp_path):
    # Faust's memory store keeps the rows of partitions a rebalance took away: a rebuild must leave them out, or
    # the worker would list another worker's view rows as its own
    w = worker(tmp_path, TickingSender())
    resources = w.by_resource.get_topic_name()
    for partition, rid in ((3, 7), (4, 8)):
        resource = {"resource_id": rid, "primary_skill": "aws", "weekly_capacity_hours": "40.00", "active": True,
                    "hired_on": "2026-03-02"}
        time_off = {"time_off_id": rid, "resource_id": rid, "start_date": "2026-03-03", "end_date": "2026-03-04",
                    "hours_per_day": "8.00", "status": "approved"}
        w.resource_rows.data[f"{partition}|{rid}|resource|{rid}".encode()] = dumps(resource)
        w.resource_rows.data[f"{partition}|{rid}|time_off|{rid}".encode()] = dumps(time_off)
    w.app._consumer = Assigned(TP(resources, 3))
    run_batch(w, lambda events: w._rebuild_resources(), [])
    assert sorted(w.resource_stages) == [3]
    assert {row["resource_id"] for row in w.published["resource_week"].values()} == {7}

    w.app._consumer = None  # outside a running worker (bench/stages.py): every partition
    run_batch(w, lambda events: w._rebuild_resources(), [])
    assert sorted(w.resource_stages) == [3, 4]
    assert {row["resource_id"] for row in w.published["resource_week"].values()} == {7, 8}


def test_a_row_the_resource_stage_refuses_is_dead_lettered_and_left_out_of_its_mirror(tmp_path, monkeypatch):
    """The mirror takes a row only once its stage folded it: the rebuild after a restart cannot meet it again."""
    from processors.capacity import ResourceStage

    w = worker(tmp_path, RecordingSender())
    resources = w.by_resource.get_topic_name()
    folded = ResourceStage.on_row

    def refusing(self, rid, kind, key, row):
        if key == 2:
            raise ValueError("a row this stage cannot fold")
        return folded(self, rid, kind, key, row)

    monkeypatch.setattr(ResourceStage, "on_row", refusing)
    time_off = {"time_off_id": 0, "resource_id": 7, "start_date": "2026-03-03", "end_date": "2026-03-04",
                "hours_per_day": "8.00", "status": "approved"}
    rows = [["7", "time_off", n, {**time_off, "time_off_id": n}, "1700000000000"] for n in (1, 2, 3)]
    run_batch(w, w._resource_batch, [FakeEvent(resources, partition=3, offset=0, key=b"r", value=dumps(rows))])
    assert sorted(k.decode() for k, _ in w.resource_rows.items()) == ["3|7|time_off|1", "3|7|time_off|3"]
    assert "dlq.processors" in w.sender.produced()
