"""A table added to a source whose slot exists is snapshotted, on the real PostgreSQL, Kafka and registry.

The slot is kept (dropping it would lose the other tables' changes since its
confirmed position): the added table is read inside a temporary slot's
exported snapshot, and the stream skips only that table's changes committed
before the snapshot's consistent point.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import psycopg
import pytest

import streams.source
from streams.exceptions import StreamsError
from streams.snapshot import Snapshotter
from tests.integration.capture_support import RunningCapture, ScratchSource, TopicReader, read_final_states, wait_for

pytestmark = pytest.mark.integration

ACCOUNTS = ("public.accounts",)
BOTH = ("public.accounts", "public.time_entries")


@pytest.fixture
def source(stack_settings, tmp_path):
    scratch = ScratchSource.create(stack_settings, tmp_path / "cdc")
    yield scratch
    scratch.drop()


def _account(source, account_id: int) -> None:
    source.execute("insert into accounts values (%s, 'Acme', 'software', 'EMEA', 'EUR', 45, now())", (account_id,))


def _entries(source, first: int, last: int) -> None:
    source.execute(
        """insert into time_entries
           select g, g %% 50, 'PRJ-' || (g %% 97), 'consultant', date '2026-01-05' + (g %% 60)::int,
                  8.00, true, 150.00, 90.00, 'submitted', 'work', now(), null, now()
           from generate_series(%s::bigint, %s::bigint) g""", (first, last))


def _table(source, query: str) -> dict:
    with psycopg.connect(source.dsn) as conn:
        return {row[0]: row[1:] for row in conn.execute(query)}


def _folded(source, table: str, columns: tuple[str, ...]) -> dict:
    """The topic's final state per key (the primary key's value), as ``columns`` tuples."""
    state, _ = read_final_states(source.settings, source.topic(table))
    return {key[0][1]: tuple(after[c] for c in columns) for key, after in state.items()}


def test_a_table_added_to_a_streaming_source_is_snapshotted_and_no_change_of_any_table_is_lost(source, stack_settings,
                                                                                               monkeypatch):
    reader = TopicReader(stack_settings)
    accounts, entries = source.topic("accounts"), source.topic("time_entries")
    _account(source, 1)
    with RunningCapture(source.config(tables=ACCOUNTS)) as run:
        _account(source, 2)
        assert len(reader.read(accounts, 2)) == 2
    assert run.error is None

    # While the capture is down: the accounts change, and time_entries, with rows, joins the publication, so
    # its own changes from here on are in the slot too (committed before its snapshot: the snapshot holds them).
    _account(source, 3)
    source.execute("update accounts set payment_terms_days = 60 where account_id = 1")
    _entries(source, 1, 500)
    source.execute(f'alter publication "pub_{source.name}" add table time_entries')
    source.execute("update time_entries set hours = 1.25 where entry_id <= 50")
    source.execute("delete from time_entries where entry_id between 51 and 60")

    # time_entries is added to the source: its snapshot stops after 100 rows until the test has changed both
    # tables (rows already read and rows not yet read, updated and deleted).
    paused, resume = threading.Event(), threading.Event()

    class PausingSnapshotter(Snapshotter):
        def rows(self, ref, columns, progress=None):
            for n, row in enumerate(super().rows(ref, columns, progress)):
                if ref.table == "time_entries" and n == 100:
                    paused.set()
                    assert resume.wait(120)
                yield row

    monkeypatch.setattr(streams.source, "Snapshotter", PausingSnapshotter)
    run = RunningCapture(source.config(tables=BOTH, snapshot_chunk_rows=50))
    run.thread.start()
    try:
        assert wait_for(lambda: paused.is_set() or not run.thread.is_alive(), timeout=60), "the snapshot did not start"
        assert run.error is None
        state = json.loads((source.state_dir / f"{source.name}.state.json").read_text())
        assert state["tables"]["public.time_entries"] == "snapshotting"
        with psycopg.connect(source.dsn) as conn:
            slots = conn.execute("select slot_name, temporary from pg_replication_slots where database = %s",
                                 (source.database,)).fetchall()
        assert (f"slot_{source.name}", False) in slots and any(temporary for _, temporary in slots)

        _entries(source, 501, 520)
        source.execute("update time_entries set hours = 2.50, status = 'approved' where entry_id <= 10")
        source.execute("update time_entries set hours = 3.75 where entry_id between 400 and 410")
        source.execute("delete from time_entries where entry_id between 20 and 25")  # read by the snapshot already
        source.execute("delete from time_entries where entry_id between 450 and 455")  # not read yet
        _account(source, 4)
        source.execute("delete from accounts where account_id = 2")
        resume.set()

        expected = 490 + 20 + 21 + 2 * 12  # r, c, u, d + tombstones
        assert wait_for(lambda: read_final_states(stack_settings, entries)[1] >= expected, timeout=90), \
            read_final_states(stack_settings, entries)[1]
        assert wait_for(lambda: read_final_states(stack_settings, accounts)[1] >= 7, timeout=30)
    finally:
        resume.set()
        run.stop()
    assert run.error is None

    records = reader.read(entries, expected)
    ops = [v["op"] if v else None for _, v in records]
    # Exactly: the snapshot, then the changes committed after it; none of those committed before it again.
    assert (ops.count("r"), ops.count("c"), ops.count("u"), ops.count("d"), ops.count(None)) == (490, 20, 21, 12, 12)
    assert ops[:490] == ["r"] * 490
    deleted = sorted(k["entry_id"] for k, v in records if v is None)
    assert deleted == [*range(20, 26), *range(450, 456)]
    assert _folded(source, "time_entries", ("hours", "status")) == _table(
        source, "select entry_id, hours, status from time_entries")
    assert _folded(source, "time_entries", ("hours",))[1] == (Decimal("2.50"),)
    # The accounts' changes made while the capture was down or snapshotting: all there, none twice.
    assert read_final_states(stack_settings, accounts)[1] == 7
    assert _folded(source, "accounts", ("payment_terms_days",)) == _table(
        source, "select account_id, payment_terms_days from accounts")

    # A restart streams both tables: no second snapshot, every later change published.
    with RunningCapture(source.config(tables=BOTH)) as run:
        _entries(source, 600, 600)
        source.execute("delete from time_entries where entry_id = 1")
        _account(source, 5)
        assert wait_for(lambda: read_final_states(stack_settings, entries)[1] >= expected + 3, timeout=60)
        assert wait_for(lambda: read_final_states(stack_settings, accounts)[1] >= 8, timeout=30)
    assert run.error is None
    assert read_final_states(stack_settings, entries)[1] == expected + 3
    assert _folded(source, "time_entries", ("hours", "status")) == _table(
        source, "select entry_id, hours, status from time_entries")
    state = json.loads((source.state_dir / f"{source.name}.state.json").read_text())
    assert state["tables"] == {"public.accounts": "streaming", "public.time_entries": "streaming"}


def test_a_first_snapshot_that_failed_is_done_on_the_next_start(source, stack_settings):
    # The only table of the source: its snapshot fails (the registry is unreachable) after the slot was made.
    _account(source, 1)
    _account(source, 2)
    with pytest.raises(StreamsError, match="unreachable"):
        with RunningCapture(source.config(tables=ACCOUNTS, registry_url="http://127.0.0.1:9")):
            pass
    state = json.loads((source.state_dir / f"{source.name}.state.json").read_text())
    assert state["tables"] == {"public.accounts": "errored"}
    assert "unreachable" in state["errors"]["public.accounts"]  # the state file says why it stopped

    # Committed after the slot, before the snapshot that is done now: a snapshot row, and a duplicate from the
    # stream, which publishes everything since the failed attempt's point (what that attempt may have published
    # could have been deleted since; its deletion must reach the topic).
    _account(source, 3)
    with RunningCapture(source.config(tables=ACCOUNTS)) as run:
        _account(source, 4)
        assert wait_for(lambda: read_final_states(stack_settings, source.topic("accounts"))[1] >= 5, timeout=60)
    assert run.error is None
    records = TopicReader(stack_settings).read(source.topic("accounts"), 5)
    assert sorted((k["account_id"], v["op"]) for k, v in records) == [
        (1, "r"), (2, "r"), (3, "c"), (3, "r"), (4, "c")]
    states, count = read_final_states(stack_settings, source.topic("accounts"))
    assert count == 5 and len(states) == 4
    state = json.loads((source.state_dir / f"{source.name}.state.json").read_text())
    assert state["tables"] == {"public.accounts": "streaming"} and state["errors"] == {}
