"""Per-table capture lifecycle, persisted so a restart knows where it stands.

    INIT ──► SNAPSHOTTING ──► STREAMING
      │            │              │
      └────────────┴──────────────┴──► ERRORED (with the reason)

A table found SNAPSHOTTING at start was interrupted mid-snapshot: the slot
is dropped and the snapshot redone (its rows are published again:
duplicates, never loss). ERRORED is left only by an operator's restart after
fixing the cause; the state file says why it stopped.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass, field
from pathlib import Path


class TableState(str, enum.Enum):
    INIT = "init"
    SNAPSHOTTING = "snapshotting"
    STREAMING = "streaming"
    ERRORED = "errored"


_ALLOWED = {
    TableState.INIT: {TableState.SNAPSHOTTING, TableState.STREAMING, TableState.ERRORED},
    TableState.SNAPSHOTTING: {TableState.STREAMING, TableState.ERRORED, TableState.INIT},
    TableState.STREAMING: {TableState.ERRORED, TableState.INIT},
    TableState.ERRORED: {TableState.INIT, TableState.STREAMING},
}


class IllegalTransition(RuntimeError):
    pass


@dataclass
class CaptureState:
    """The lifecycle of each captured table of one source, in a JSON file."""

    path: Path
    tables: dict[str, TableState] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, tables: list[str]) -> "CaptureState":
        state = cls(path)
        if path.exists():
            raw = json.loads(path.read_text())
            state.tables = {t: TableState(s) for t, s in raw.get("tables", {}).items()}
            state.errors = dict(raw.get("errors", {}))
        for table in tables:
            state.tables.setdefault(table, TableState.INIT)
        return state

    def move(self, table: str, to: TableState, reason: str | None = None) -> None:
        current = self.tables.get(table, TableState.INIT)
        if to != current and to not in _ALLOWED[current]:
            raise IllegalTransition(f"table {table}: {current.value} → {to.value} is not allowed")
        self.tables[table] = to
        if to == TableState.ERRORED:
            self.errors[table] = reason or "unknown"
        else:
            self.errors.pop(table, None)

    def move_all(self, to: TableState) -> None:
        for table in list(self.tables):
            self.move(table, to)

    def any_in(self, state: TableState) -> bool:
        return any(s == state for s in self.tables.values())

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tables": {t: s.value for t, s in self.tables.items()}, "errors": self.errors}, indent=2))
        os.replace(tmp, self.path)
