"""A batch's outputs reach the broker before its mirror records the change (processors/app.py, _flush).

Had the mirror recorded a change whose outputs a crash then cut off (a view row's deletion, say), the replay would
find nothing changed and never send them: the order is what makes a kill -9 harmless. The sender here records the
calls instead of producing; the store is Faust's memory store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.batch import MESSAGE_BYTES, Cause, Outbox
from processors.sender import DeliveryFailed
from tests.unit.processors.worker_fakes import FakeEvent, run_batch, worker

ROLLUP_TOPIC = "psmesh-processors-rollup-repartition"


def test_views_and_derived_events_are_on_the_broker_before_the_mirror_is_written(tmp_path: Path):
    processors = worker(tmp_path)
    recorder = processors.sender
    processors.published["pipeline"][b"cloud|2026-04-01"] = {"service_line": "cloud"}
    out = Outbox()
    cause = Cause(FakeEvent(ROLLUP_TOPIC), None, None)
    out.write("rollup_rows", b"opp|7", FakeEvent(ROLLUP_TOPIC), None)  # the contribution goes away...
    out.views[("pipeline", b"cloud|2026-04-01")] = [("cloud", "2026-04-01"), None, cause, False]  # ...its row too
    out.events.append(("derived.project_risk_alerts", {"k": 1}, {"v": 1}, cause))
    processors.tables["rollup_rows"].data[b"opp|7"] = b"{}"

    store = processors.tables["rollup_rows"].data
    held_at_each_wait = []
    wait = recorder.wait

    async def waiting(ticket):
        held_at_each_wait.append(b"opp|7" in store)
        return await wait(ticket)

    recorder.wait = waiting
    run_batch(processors, processors._flush, "rollup", out)
    topics = [topic for call, topic in recorder.calls]
    assert recorder.calls[:3] == [("produce", "views.pipeline"), ("produce", "derived.project_risk_alerts"),
                                  ("wait", "")]
    assert topics[3:] == [processors.rollup_rows.changelog_topic.get_topic_name(), ""]
    # the store last: only once the changelog holds the deletion too
    assert held_at_each_wait == [True, True] and b"opp|7" not in store


def test_a_deletion_whose_changelog_record_was_lost_is_recorded_again_by_the_replay(tmp_path: Path):
    # The broker does not acknowledge the changelog record (or the worker dies before it does): the batch is
    # replayed. Had the store already taken the deletion, the replay would find the row gone and send no
    # tombstone, and a worker restoring the partition from its changelog would bring the row back.
    processors = worker(tmp_path)
    sender = processors.sender
    changelog = processors.rollup_rows.changelog_topic.get_topic_name()
    wait, lost = sender.wait, [True]

    async def waiting(ticket):
        if lost and sender.produced()[-1:] == [changelog]:  # the changelog record's delivery fails once
            lost.pop()
            raise DeliveryFailed("a record of the batch was not delivered")
        return await wait(ticket)

    sender.wait = waiting
    store = processors.tables["rollup_rows"].data
    store[b"opp|7"] = b"{}"

    def deletion() -> Outbox:
        out = Outbox()
        out.write("rollup_rows", b"opp|7", FakeEvent(ROLLUP_TOPIC), None)
        return out

    with pytest.raises(DeliveryFailed):
        run_batch(processors, processors._flush, "rollup", deletion())
    assert b"opp|7" in store  # the store did not get ahead of the changelog

    run_batch(processors, processors._flush, "rollup", deletion())
    assert [value for topic, _, value in sender.records if topic == changelog] == [None, None]  # sent again
    assert b"opp|7" not in store


def test_a_batchs_rollup_contributions_go_in_messages_under_the_size_limit(tmp_path: Path):
    processors = worker(tmp_path)
    recorder = processors.sender
    out = Outbox()
    cause = Cause(FakeEvent(ROLLUP_TOPIC), None, None, "1790000000000")
    for n in range(3000):  # a large project batch: 3,000 line contributions of 40 weeks each
        out.rollup[f"line|{n}"] = ({"skill": "aws", "weeks": {f"2026-W{w:02d}": "8.00" for w in range(1, 41)}}, cause)

    run_batch(processors, processors._flush, "project", out)
    rollup = processors.to_rollup.get_topic_name()
    sizes = [size for topic, size in recorder.sizes if topic == rollup]
    assert len(sizes) > 1 and max(sizes) <= MESSAGE_BYTES
    assert sum(sizes) > 1_000_000
