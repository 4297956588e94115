"""The router leaves out the change events a capture sent again after its restart (processors/app.py
``_unrepeated``): an older version of a row, after a newer one, by the ``psmesh-position`` header
(streams/position.py) against its partition's mark, kept in the ``routes`` table and settled with the batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from processors.app import PARTITIONS
from processors.batch import stage_partition
from processors.records import loads
from streams import position
from tests.unit.processors.test_route_coalesce import BY_PROJECT, change, entry, forwarded, routing
from tests.unit.processors.test_settling import HeldSender, batches, forwards, router
from tests.unit.processors.worker_fakes import FakeEvent, run_batch

PRJ_1 = stage_partition(b"PRJ-1", PARTITIONS)
ORIGIN = position.origin("7441862374219938371", 1)


def at(event: FakeEvent, commit_lsn: int, change_lsn: int, origin: bytes = ORIGIN, partition: int = 0) -> FakeEvent:
    """``event`` as the capture publishes it: with its position, on ``partition``."""
    event.message.headers = [("psmesh-commit-ms", b"1"), (position.HEADER, position.encode(origin, commit_lsn,
                                                                                           change_lsn))]
    event.message.partition = partition
    event.message.tp = (event.message.topic, partition)
    return event


def statuses(processors) -> list[tuple[int, str | None]]:
    """(entry_id, status or None for a removal) of each entry row forwarded to PRJ-1's partition, in order."""
    rows = forwarded(processors.sender, BY_PROJECT).get(PRJ_1, [])
    return [(r[2], r[3]["status"] if r[3] else None) for r in rows if r[1] == "entry"]


def repeated(processors) -> float:
    return sum(s.value for m in processors.metrics.repeated.collect() for s in m.samples
               if s.name.endswith("_total"))


def test_a_version_sent_again_after_a_newer_one_is_left_out_in_a_later_batch(tmp_path: Path):
    processors = routing(tmp_path, [at(change("entry", entry(1, "submitted"), 0, "c"), 100, 90),
                                    at(change("entry", entry(1, "approved"), 1), 200, 190)])
    assert statuses(processors) == [(1, "approved")]
    processors.sender.records.clear()
    # the capture restarted from its slot: both versions again, then a change it had not published
    run_batch(processors, processors._route_batch, [
        at(change("entry", entry(1, "submitted"), 2, "c"), 100, 90),
        at(change("entry", entry(2, "submitted"), 3, "c"), 300, 290)])
    assert statuses(processors) == [(2, "submitted")]
    assert repeated(processors) == 1


def test_a_repeat_within_one_batch_does_not_become_the_rows_last_version(tmp_path: Path):
    # without the marks the coalescing would forward the repeated 'submitted' as the row's last version
    processors = routing(tmp_path, [at(change("entry", entry(1, "submitted"), 0, "c"), 100, 90),
                                    at(change("entry", entry(1, "approved"), 1), 200, 190),
                                    at(change("entry", entry(1, "submitted"), 2, "c"), 100, 90)])
    assert statuses(processors) == [(1, "approved")]


def test_the_events_of_the_marks_own_position_are_taken_again(tmp_path: Path):
    # a key change is a delete and a create at one position; the last event taken again changes nothing
    processors = routing(tmp_path, [at(change("entry", entry(1, "submitted"), 0, "c"), 100, 90),
                                    at(change("entry", entry(1, "approved"), 1), 100, 95)])
    processors.sender.records.clear()
    run_batch(processors, processors._route_batch, [at(change("entry", entry(1, "approved"), 2), 100, 95)])
    assert statuses(processors) == [(1, "approved")]
    assert repeated(processors) == 0


@pytest.mark.parametrize("moved_to", [position.origin("7441862374219938371", 2),  # a promoted standby, a PITR
                                      position.origin("7500000000000000001", 1)])  # restored into another cluster
def test_a_source_on_another_timeline_or_cluster_is_not_compared_with_the_old_one(tmp_path: Path, moved_to: bytes):
    # it may number its WAL below what the old one published
    processors = routing(tmp_path, [at(change("entry", entry(1, "submitted"), 0, "c"), 5_000, 4_990)])
    processors.sender.records.clear()
    run_batch(processors, processors._route_batch, [
        at(change("entry", entry(1, "approved"), 1), 3_000, 2_990, moved_to),
        at(change("entry", entry(2, "submitted"), 2, "c"), 3_100, 3_090, moved_to),
        # ... and a repeat of its own first change is a repeat again
        at(change("entry", entry(1, "approved"), 3), 3_000, 2_990, moved_to)])
    assert statuses(processors) == [(1, "approved"), (2, "submitted")]
    assert repeated(processors) == 1


def test_each_partition_has_its_own_mark_and_events_without_a_position_are_taken(tmp_path: Path):
    processors = routing(tmp_path, [at(change("entry", entry(1, "submitted"), 0, "c"), 900, 890, partition=0),
                                    at(change("entry", entry(2, "submitted"), 0, "c"), 100, 90, partition=1),
                                    change("entry", entry(3, "submitted"), 1, "c")])
    assert sorted(statuses(processors)) == [(1, "submitted"), (2, "submitted"), (3, "submitted")]
    routes = processors.tables["routes"].data
    topic = change("entry", entry(1, "x"), 0).message.topic
    assert loads(routes[f"~position|{topic}|0".encode()]) == [ORIGIN.decode(), 900, 890]
    assert loads(routes[f"~position|{topic}|1".encode()]) == [ORIGIN.decode(), 100, 90]


@pytest.mark.parametrize("header", [b"", b"1,2", b"o,b,c", b"o,1,2,3", "\u00e9,1,2".encode()])
def test_a_header_that_is_not_a_position_assumes_nothing(tmp_path: Path, header: bytes):
    event = change("entry", entry(1, "submitted"), 0, "c")
    event.message.headers = [(position.HEADER, header)]
    processors = routing(tmp_path, [at(change("entry", entry(1, "approved"), 1), 200, 190), event])
    assert statuses(processors) == [(1, "submitted")]


def test_a_batch_handled_again_after_a_failure_is_not_taken_for_a_repeat_of_itself(tmp_path: Path):
    # the marks reach the store only once the batch settled: its retry, and the next batch, see the marks before it
    sender = HeldSender(failing={1})
    processors = router(tmp_path, sender)
    acked: list[str] = []
    named = {"first": [at(change("entry", entry(1, "submitted"), 0, "c"), 100, 90),
                       at(change("entry", entry(1, "approved"), 1), 200, 190)],
             "second": [at(change("entry", entry(1, "submitted"), 2, "c"), 100, 90),
                        at(change("entry", entry(2, "submitted"), 3, "c"), 300, 290)]}

    async def go():
        await asyncio.wait_for(processors._batches(batches(acked, **named), "route", processors._route_batch), 10)

    asyncio.run(go())
    assert acked == ["first", "second"]
    handled = [(ticket, entry_id, code) for ticket, partition, entry_id, code in forwards(sender)]
    # ticket 1 failed; the first batch was handled again (ticket 3) and still forwarded its row, the second batch
    # (handled at ticket 2 before the failure, and again at 4) left out the repeat
    assert (3, 1, "PRJ-1") in handled
    assert [h for h in handled if h[0] == 4] == [(4, 2, "PRJ-1")]
    assert loads(processors.tables["routes"].data[b"~position|" + named["first"][0].message.topic.encode()
                                                  + b"|0"]) == [ORIGIN.decode(), 300, 290]


def test_a_mark_goes_to_the_changelog_after_the_routes_of_the_rows_it_passed(tmp_path: Path):
    # a crash that cut the batch's changelog records short must not leave the mark without a route it passed: the
    # replay would leave the row out and its route would stay the old one
    processors = routing(tmp_path, [at(change("entry", entry(1, "submitted"), 0, "c"), 100, 90),
                                    at(change("entry", entry(2, "submitted", project_code="PRJ-2"), 1, "c"), 200, 190)])
    changelog = [loads(value) for topic, partition, value in processors.sender.records
                 if topic.endswith("-routes-changelog") and partition == 0]
    assert changelog[-1] == [ORIGIN.decode(), 200, 190]
    assert [["p", "PRJ-1"], ["r", "12"]] in changelog[:-1] and [["p", "PRJ-2"], ["r", "12"]] in changelog[:-1]
