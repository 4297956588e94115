"""A table snapshotted while the slot exists: the stream skips what its snapshot holds, and nothing else.

The capture runs with a recording publisher and a registrar that needs no
server; pgoutput messages are written here. A table whose snapshot's
consistent point is C must not get the events of transactions committed
before C (they are in the snapshot) and must get every event of those
committed at or after C, on the fast path, the reference path and streamed
(spilled) transactions alike; other tables lose nothing.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from streams.lsn import Lsn
from streams.source import CaptureConfig, CaptureSource
from streams.state import CaptureState, TableState
from tests.unit.streams.stand_ins import MemoryRegistrar

ORDERS, ACCOUNTS = 16400, 16401
C = 0x7000000  # the consistent point of public.orders' snapshot


class _Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []

    def send(self, topic, key, value, on_delivery, headers=None) -> None:
        self.sent.append((topic, value))

    def produce(self, topic, value, key, partition, on_delivery, headers=None) -> None:
        self.sent.append((topic, value))

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def flush(self, timeout: float = 30.0) -> int:
        return 0


def _cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def _tuple(values) -> bytes:
    out = [struct.pack("!H", len(values))]
    for v in values:
        b = v.encode()
        out.append(b"t" + struct.pack("!I", len(b)) + b)
    return b"".join(out)


def _relation(rid: int, name: str, xid: int | None = None) -> bytes:
    columns = [("id", 20, -1, True), ("amount", 1700, ((14 << 16) | 2) + 4, False)]
    body = b"".join(bytes((1 if key else 0,)) + _cstr(n) + struct.pack("!Ii", oid, typmod) for n, oid, typmod, key in columns)
    head = b"R" + (struct.pack("!I", xid) if xid is not None else b"")
    return head + struct.pack("!I", rid) + _cstr("public") + _cstr(name) + b"d" + struct.pack("!H", len(columns)) + body


def _insert(rid: int, values, xid: int | None = None) -> bytes:
    return b"I" + (struct.pack("!I", xid) if xid is not None else b"") + struct.pack("!I", rid) + b"N" + _tuple(values)


def _update(rid: int, values, xid: int | None = None) -> bytes:
    return b"U" + (struct.pack("!I", xid) if xid is not None else b"") + struct.pack("!I", rid) + b"N" + _tuple(values)


def _delete_key(rid: int, key: str, xid: int | None = None) -> bytes:
    # The key tuple: the key column's text, the others null ('n').
    b = key.encode()
    body = struct.pack("!H", 2) + b"t" + struct.pack("!I", len(b)) + b + b"n"
    return b"D" + (struct.pack("!I", xid) if xid is not None else b"") + struct.pack("!I", rid) + b"K" + body


def _transaction(xid: int, commit_lsn: int, changes: list[bytes]) -> list[bytes]:
    return [b"B" + struct.pack("!QqI", commit_lsn, 849_000_000_000_000, xid), *changes,
            b"C" + struct.pack("!BQQq", 0, commit_lsn, commit_lsn + 0x30, 849_000_000_000_000)]


def _streamed(xid: int, commit_lsn: int, changes: list[bytes]) -> list[bytes]:
    return [b"S" + struct.pack("!IB", xid, 1), *changes, b"E",
            b"c" + struct.pack("!IBQQq", xid, 0, commit_lsn, commit_lsn + 0x30, 849_000_000_000_000)]


def _capture(tmp_path: Path, fast: bool) -> tuple[CaptureSource, _Publisher]:
    config = CaptureConfig(name="crm", dsn="", database="crm", tables=("public.orders", "public.accounts"), slot="s",
                           publication="p", registry_url="http://unused", kafka={},
                           state_dir=tmp_path / ("fast" if fast else "ref"))
    config.state_dir.mkdir(parents=True, exist_ok=True)
    publisher = _Publisher()
    capture = CaptureSource(config, registrar=MemoryRegistrar(), publisher=publisher, fast_path=fast)
    capture._skip_before = {"public.orders": C}  # as _open_stream sets it from the state file after a catch-up
    return capture, publisher


def _feed(capture: CaptureSource, payloads: list[bytes], lsn: int = 0x5000000) -> None:
    for payload in payloads:
        lsn += 0x10
        capture._on_wal(payload, lsn, lsn + 0x8)


def _topics(publisher: _Publisher) -> list[tuple[str, bool]]:
    """(table, tombstone?) per event sent."""
    return [(topic.rsplit(".", 1)[1], value is None) for topic, value in publisher.sent]


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "reference path"])
def test_a_snapshotted_tables_changes_committed_before_its_consistent_point_are_skipped_and_later_ones_published(
        tmp_path, fast):
    capture, publisher = _capture(tmp_path, fast)
    before = _transaction(700, C - 0x100, [
        _relation(ORDERS, "orders"), _relation(ACCOUNTS, "accounts"),
        _insert(ORDERS, ["1", "10.00"]), _update(ORDERS, ["1", "11.00"]), _delete_key(ORDERS, "2"),
        _insert(ACCOUNTS, ["7", "1.00"]),
    ])
    _feed(capture, before)
    # Only the other table's change: the snapshot at C holds the orders' ones.
    assert _topics(publisher) == [("accounts", False)]
    publisher.sent.clear()

    at = _transaction(701, C, [_insert(ORDERS, ["3", "30.00"]), _delete_key(ORDERS, "1"), _update(ACCOUNTS, ["7", "2.00"])])
    after = _transaction(702, C + 0x1000, [_update(ORDERS, ["3", "31.00"])])
    _feed(capture, at + after, lsn=C + 0x10)
    assert _topics(publisher) == [("orders", False), ("orders", False), ("orders", True), ("accounts", False),
                                  ("orders", False)]
    assert capture._skip_before == {}  # the point was reached: nothing is compared any more


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "reference path"])
def test_a_streamed_transaction_is_skipped_or_published_by_its_commit_lsn(tmp_path, fast):
    capture, publisher = _capture(tmp_path, fast)
    # Begun before C, committed after it: published (the snapshot at C does not hold it).
    late = _streamed(800, C + 0x200, [_relation(ORDERS, "orders", 800), _insert(ORDERS, ["5", "5.00"], 800)])
    # Committed before C (its changes were decoded in stream blocks): skipped for orders, not for accounts.
    early = _streamed(801, C - 0x200, [_relation(ORDERS, "orders", 801), _relation(ACCOUNTS, "accounts", 801),
                                       _insert(ORDERS, ["4", "4.00"], 801), _delete_key(ORDERS, "1", 801),
                                       _insert(ACCOUNTS, ["8", "8.00"], 801)])
    _feed(capture, early)
    assert _topics(publisher) == [("accounts", False)]
    publisher.sent.clear()
    _feed(capture, late, lsn=C + 0x100)
    assert _topics(publisher) == [("orders", False)]


def test_the_consistent_points_are_saved_with_the_states_and_forgotten_once_confirmed(tmp_path):
    path = tmp_path / "crm.state.json"
    state = CaptureState.load(path, ["public.accounts", "public.orders"])
    state.move("public.accounts", TableState.STREAMING)
    assert state.needs_snapshot("public.orders") and not state.needs_snapshot("public.accounts")
    state.move("public.orders", TableState.SNAPSHOTTING)
    state.snapshot_lsn["public.orders"] = Lsn(C)
    state.move("public.orders", TableState.STREAMING)
    state.save()

    again = CaptureState.load(path, ["public.accounts", "public.orders"])
    assert again.snapshot_lsn == {"public.orders": C} and not again.needs_snapshot("public.orders")
    assert not again.forget_snapshot_lsns(C - 1) and again.snapshot_lsn
    assert again.forget_snapshot_lsns(C) and again.snapshot_lsn == {}


def test_a_table_that_errored_before_its_snapshot_completed_is_snapshotted_on_restart_and_the_reason_is_kept(tmp_path):
    path = tmp_path / "crm.state.json"
    state = CaptureState.load(path, ["public.accounts"])
    state.move("public.accounts", TableState.SNAPSHOTTING)
    state.move("public.accounts", TableState.ERRORED, "schema registry unreachable")
    state.save()

    again = CaptureState.load(path, ["public.accounts"])
    assert again.tables["public.accounts"] == TableState.ERRORED
    assert again.errors == {"public.accounts": "schema registry unreachable"}
    assert again.needs_snapshot("public.accounts")
    again.move("public.accounts", TableState.SNAPSHOTTING)  # the restart snapshots it
    again.move("public.accounts", TableState.STREAMING)
    assert not again.needs_snapshot("public.accounts") and again.errors == {}


def test_a_table_that_errored_while_streaming_is_not_snapshotted_again(tmp_path):
    state = CaptureState.load(tmp_path / "crm.state.json", ["public.accounts"])
    state.move("public.accounts", TableState.SNAPSHOTTING)
    state.move("public.accounts", TableState.STREAMING)
    state.move("public.accounts", TableState.ERRORED, "schema change refused")
    state.save()
    assert not CaptureState.load(state.path, ["public.accounts"]).needs_snapshot("public.accounts")


def test_a_snapshot_redone_after_a_crash_keeps_the_interrupted_attempts_point(tmp_path, monkeypatch):
    # Attempt 1 at C1 publishes some rows and dies; attempt 2 runs at C2. A row attempt 1 published and that was
    # deleted between C1 and C2 is in neither attempt 2's snapshot nor, with C2 as the point, the stream: the
    # point must stay C1, so that the deletion is published.
    import streams.source as source

    points = iter([C, C + 0x5000])

    class TemporarySlot:
        def __init__(self, dsn) -> None:
            pass

        def create_slot(self, name, temporary=False):
            return next(points), "snap"

        def close(self) -> None:
            pass

    monkeypatch.setattr(source, "ReplicationStream", TemporarySlot)
    capture, _ = _capture(tmp_path, fast=True)
    orders = [r for r in capture.config.table_refs() if r.qualified == "public.orders"]
    calls = []

    def snapshot(refs, name, lsn):
        calls.append(dict(capture.state.snapshot_lsn))
        if len(calls) == 1:
            raise RuntimeError("killed mid-snapshot")

    monkeypatch.setattr(capture, "_snapshot", snapshot)
    with pytest.raises(RuntimeError):
        capture._catch_up(orders)
    assert calls[0] == {"public.orders": C}  # saved before any row went out
    again = CaptureState.load(capture.state.path, ["public.orders", "public.accounts"])
    assert again.snapshot_lsn == {"public.orders": C} and again.needs_snapshot("public.orders")

    capture._catch_up(orders)
    assert capture.state.snapshot_lsn == {"public.orders": C}  # not C + 0x5000
    assert capture.state.tables["public.orders"] == TableState.STREAMING
