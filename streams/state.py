"""Per-table capture lifecycle, persisted so a restart knows where it stands.

    INIT ──► SNAPSHOTTING ──► STREAMING
      │            │              │
      └────────────┴──────────────┴──► ERRORED (with the reason)

A table is snapshotted once, before its changes stream. When the slot is
created, every table is snapshotted inside the snapshot the slot exports.
A table found INIT (added to the source's ``tables:``) or SNAPSHOTTING (its
snapshot was interrupted) while the slot exists is snapshotted inside the
snapshot of a temporary slot, whose consistent point is kept per table in
``snapshot_lsn``: changes of that table in transactions committed before it
are in the snapshot, and the stream skips them. The slot is never dropped
for it, so the other tables lose nothing.

ERRORED is left by the next run: an operator's restart after fixing the
cause, or the capture's own once the registry accepts the schema of a table
a refusal stopped; the state file says why it stopped. A table that errored before its snapshot
completed (the registry unreachable or refusing its schema) stays in
``snapshot_pending`` and is snapshotted on that restart: its rows are not
in the stream.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from streams.lsn import Lsn


class TableState(str, enum.Enum):
    INIT = "init"
    SNAPSHOTTING = "snapshotting"
    STREAMING = "streaming"
    ERRORED = "errored"


_ALLOWED = {
    TableState.INIT: {TableState.SNAPSHOTTING, TableState.STREAMING, TableState.ERRORED},
    TableState.SNAPSHOTTING: {TableState.STREAMING, TableState.ERRORED, TableState.INIT},
    # a new slot (the old one lost, or dropped to start over) snapshots every table again
    TableState.STREAMING: {TableState.ERRORED, TableState.INIT, TableState.SNAPSHOTTING},
    TableState.ERRORED: {TableState.INIT, TableState.SNAPSHOTTING, TableState.STREAMING},
}


class IllegalTransition(RuntimeError):
    pass


@dataclass
class CaptureState:
    """The lifecycle of each captured table of one source, in a JSON file."""

    path: Path
    tables: dict[str, TableState] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: per table snapshotted while the slot existed: the consistent point of its snapshot. The stream skips
    #: the table's changes in transactions whose commit LSN is below it (the snapshot holds them).
    snapshot_lsn: dict[str, Lsn] = field(default_factory=dict)
    #: tables whose snapshot started and has not completed: kept through ERRORED, cleared by STREAMING or INIT
    snapshot_pending: set[str] = field(default_factory=set)
    #: per table, saved when a run that held another table (a refused schema: its changes left in the slot) stops
    #: cleanly: the end of the transactions whose events of this table Kafka acknowledged. The next run, which
    #: starts from the held position, skips this table's changes committed before it (published already).
    published_lsn: dict[str, Lsn] = field(default_factory=dict)
    #: tables whose snapshot the registry refused (their schema): the snapshot that follows publishes every change
    #: of theirs the slot still holds, from before it too, since rows of theirs may be on the topic from an earlier
    #: slot and only the stream can delete them there (CaptureSource._hold_snapshot)
    snapshot_refused: set[str] = field(default_factory=set)
    #: the highest position this capture confirmed to its slot (every event before it acknowledged by Kafka). A slot
    #: confirmed before it went back in time: restored from a backup or a disk snapshot (or PostgreSQL crashed
    #: before it saved the slot: taken the same way, which costs only repeats told apart).
    confirmed_lsn: Lsn = Lsn(0)
    #: the highest position up to which Kafka acknowledged every event of this capture, a held table or not. A
    #: server whose WAL ends before it went back in time.
    acknowledged_lsn: Lsn = Lsn(0)
    #: the third part of the capture's origin (streams/position.py): moved on when positions this capture published
    #: may come again for other changes (the WAL went back) or when a delivery failed and later events of the same
    #: partition may have been written without it, so that consumers compare nothing across it
    epoch: int = 0

    @classmethod
    def load(cls, path: Path, tables: list[str]) -> "CaptureState":
        state = cls(path)
        if path.exists():
            raw = json.loads(path.read_text())
            state.tables = {t: TableState(s) for t, s in raw.get("tables", {}).items()}
            state.errors = dict(raw.get("errors", {}))
            state.snapshot_lsn = {t: Lsn.parse(s) for t, s in raw.get("snapshot_lsn", {}).items()}
            state.snapshot_pending = set(raw.get("snapshot_pending", ()))
            state.published_lsn = {t: Lsn.parse(s) for t, s in raw.get("published_lsn", {}).items()}
            state.snapshot_refused = set(raw.get("snapshot_refused", ()))
            state.confirmed_lsn = Lsn.parse(raw.get("confirmed_lsn", "0/0"))
            state.acknowledged_lsn = Lsn.parse(raw.get("acknowledged_lsn", "0/0"))
            state.epoch = int(raw.get("epoch", 0))
        for table in tables:
            state.tables.setdefault(table, TableState.INIT)
        return state

    def move(self, table: str, to: TableState, reason: str | None = None) -> None:
        current = self.tables.get(table, TableState.INIT)
        if to != current and to not in _ALLOWED[current]:
            raise IllegalTransition(f"table {table}: {current.value} → {to.value} is not allowed")
        self.tables[table] = to
        if to == TableState.SNAPSHOTTING:
            self.snapshot_pending.add(table)
        elif to != TableState.ERRORED:
            self.snapshot_pending.discard(table)
        if to == TableState.ERRORED:
            self.errors[table] = reason or "unknown"
        else:
            self.errors.pop(table, None)

    def move_all(self, to: TableState) -> None:
        for table in list(self.tables):
            self.move(table, to)

    def any_in(self, state: TableState) -> bool:
        return any(s == state for s in self.tables.values())

    def needs_snapshot(self, table: str) -> bool:
        """True while the table's snapshot has not completed: never started, interrupted, or failed (ERRORED)."""
        return (self.tables.get(table, TableState.INIT) in (TableState.INIT, TableState.SNAPSHOTTING)
                or table in self.snapshot_pending)

    def forget_snapshot_lsns(self, confirmed: int) -> bool:
        """Drop the consistent points (and published positions) the slot has confirmed: a restart resumes past
        them, so nothing below them comes again (PostgreSQL skips transactions committed before the slot's
        confirmed position). True when something was dropped (the caller saves)."""
        done = False
        for points in (self.snapshot_lsn, self.published_lsn):
            for table in [t for t, lsn in points.items() if lsn <= confirmed]:
                del points[table]
                done = True
        return done

    def new_slot(self, consistent_lsn: int, tables: list[str]) -> None:
        """The slot was created at ``consistent_lsn``: the snapshot of ``tables`` stands there, and the positions
        saved for an earlier slot's WAL (one invalidated and dropped, a rebuilt server) mean nothing any more."""
        self.snapshot_lsn = {table: Lsn(consistent_lsn) for table in tables}
        self.published_lsn = {}

    def new_epoch(self) -> None:
        """Start a new epoch of positions (see :attr:`epoch`), from no confirmed position."""
        self.epoch += 1
        self.confirmed_lsn = self.acknowledged_lsn = Lsn(0)

    def skip_points(self) -> dict[str, int]:
        """Per table, the position before which the stream skips its changes (in a snapshot, or published already):
        the later of its consistent point and its published position."""
        points: dict[str, int] = dict(self.snapshot_lsn)
        for table, lsn in self.published_lsn.items():
            points[table] = max(points.get(table, 0), lsn)
        return points

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "tables": {t: s.value for t, s in self.tables.items()},
            "errors": self.errors,
            "snapshot_lsn": {t: str(Lsn(lsn)) for t, lsn in self.snapshot_lsn.items()},
            "snapshot_pending": sorted(self.snapshot_pending),
            "published_lsn": {t: str(Lsn(lsn)) for t, lsn in self.published_lsn.items()},
            "snapshot_refused": sorted(self.snapshot_refused),
            "confirmed_lsn": str(Lsn(self.confirmed_lsn)),
            "acknowledged_lsn": str(Lsn(self.acknowledged_lsn)),
            "epoch": self.epoch,
        }, indent=2))
        os.replace(tmp, self.path)
