"""The batch outbox: what many rows of one batch produce is coalesced by key, derived events are kept in order."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from processors.batch import MESSAGE_BYTES, Cause, Outbox, messages, stage_partition
from processors.records import dumps, loads
from processors.effects import Effects, view_row
from psmesh.latency import COMMIT_HEADER


def test_a_rows_stage_partition_is_the_one_the_default_partitioner_gives_its_key():
    for key in (b"PRJ-1", b"PRJ-1000000000123", b"7", b"150"):
        assert stage_partition(key, 6) == DefaultPartitioner()(key, list(range(6)), list(range(6)))


def test_the_last_row_of_a_view_key_wins_with_the_header_of_the_change_that_set_it():
    out = Outbox()
    first, second = Cause("e1", b"k", b"v", "1000"), Cause("e2", b"k", b"v", "2000")
    out.add(Effects(views=[("project_financials", ("PRJ-1",), {"wip": 1})]), first)
    out.add(Effects(views=[("project_financials", ("PRJ-1",), {"wip": 2}), ("project_financials", ("PRJ-2",), None)]),
            second)
    assert {k: (v[1], v[2].headers) for k, v in out.views.items()} == {
        ("project_financials", b"PRJ-1"): ({"wip": 2}, {COMMIT_HEADER: b"2000"}),
        ("project_financials", b"PRJ-2"): (None, {COMMIT_HEADER: b"2000"}),
    }


def test_a_view_row_to_resend_stays_resent_when_a_later_row_of_the_batch_updates_it():
    out = Outbox()
    out.add(Effects(views=[("resource_week", (7, "2026-03-02"), {"h": 1})]), Cause("e", None, None), resend=True)
    out.add(Effects(views=[("resource_week", (7, "2026-03-02"), {"h": 2})]), Cause("e", None, None))
    assert out.views[("resource_week", b"7|2026-03-02")][3] is True


def test_a_lazy_view_row_is_computed_when_resolved_from_the_state_as_it_is_then():
    state = {"wip": 1}
    out = Outbox()
    out.add(Effects(views=[("project_financials", ("PRJ-1",), lambda: dict(state))]), Cause("e", None, None))
    state["wip"] = 5
    assert view_row(out.views[("project_financials", b"PRJ-1")][1]) == {"wip": 5}


def test_derived_events_are_kept_in_order_and_contributions_and_metadata_coalesce():
    out = Outbox()
    cause = Cause("e", None, None)
    out.add(Effects(events=[("t", {"id": 1}, {"n": 1})], rollup=[("opp|1", {"a": 1})], meta=[("PRJ-1", {"m": 1})]),
            cause, "project_rows", 3)
    out.add(Effects(events=[("t", {"id": 2}, {"n": 2})], rollup=[("opp|1", None)], meta=[("PRJ-1", {"m": 2})]),
            cause, "project_rows", 3)
    assert [e[1]["id"] for e in out.events] == [1, 2]
    assert out.rollup == {"opp|1": (None, cause)}
    assert out.writes == {("project_rows", b"3|PRJ-1|meta|"): ("e", {"m": 2})}


def test_rows_for_a_stage_are_split_into_messages_under_the_size_limit_in_order():
    # a router batch of 4,000 time entries of one project: over librdkafka's 1 MB as one message
    rows = [["PRJ-1000123", "entry", n, {"entry_id": n, "resource_id": 123456, "project_code": "PRJ-1000123",
                                         "role": "solution_architect", "work_date": "2026-03-10", "hours": "8.00",
                                         "billable": True, "bill_rate": "150.00", "cost_rate": "90.00",
                                         "status": "approved"}, "1790000000000"]
            for n in range(10_000_000, 10_004_000)]
    assert len(dumps(rows)) > 1_000_000
    bodies = messages(rows)
    assert len(bodies) > 4 and all(len(body) <= MESSAGE_BYTES for body in bodies)
    assert [row for body in bodies for row in loads(body)] == rows
    assert messages(rows[:10]) == [dumps(rows[:10])]  # under the limit: the one message as before
    assert messages([]) == []


def test_a_row_longer_than_the_limit_goes_in_a_message_of_its_own():
    rows = [["a"], ["b" * 300], ["c"]]
    assert messages(rows, limit=100) == [dumps([["a"]]), dumps([["b" * 300]]), dumps([["c"]])]


def test_rows_of_any_lengths_are_cut_into_messages_under_the_limit_in_order():
    import random

    rng = random.Random(7)
    for limit in (60, 300, 4096):
        rows = [["k", "x" * rng.choice([0, 1, 5, 40, 200, 700])] for _ in range(rng.randint(1, 400))]
        bodies = messages(rows, limit=limit)
        assert [row for body in bodies for row in loads(body)] == rows
        # a message over the limit holds one row, and only when that row alone is over it
        assert all(len(body) <= limit or len(loads(body)) == 1 for body in bodies)
        assert all(len(dumps([row])) > limit for body in bodies if len(body) > limit for row in loads(body))


def test_rows_are_written_as_the_standard_library_writes_them_whatever_their_keys():
    import json
    from datetime import date
    from decimal import Decimal

    row = {"entry_id": 7, "hours": Decimal("7.50"), "work_date": date(2026, 3, 2), "billable": True, "role": None}
    assert loads(dumps(row)) == json.loads(json.dumps(row, default=str))
    # keys other than strings (a dict keyed by id): as json.dumps writes them, not refused
    keyed = {1: "a", 2: {"b": [1, 2]}, "c": 3}
    assert dumps(keyed) == json.dumps(keyed, separators=(",", ":")).encode()
    with pytest.raises(TypeError):  # what cannot be forwarded is still refused
        dumps({"x": object()})
