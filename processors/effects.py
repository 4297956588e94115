"""What applying a row change to a stage produces, before anything touches Kafka.

Stages are pure: they fold rows into state and return effects. The Faust
layer (processors/app.py) turns them into view-table assignments, view
events, derived events and messages to the next stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Effects:
    #: (view, key tuple, stored row or None to delete, or a callable giving either): compared with the row last
    #: published before publishing. A callable is called once, when the batch is published, on the state as it
    #: is then: a view row that many changes of one batch touch is computed once (see :func:`view_row`).
    views: list[tuple[str, tuple, Any]] = field(default_factory=list)
    #: (topic, key record, value record): derived events, published as they are.
    events: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    #: (key, value or None): contributions sent to the rollup stage.
    rollup: list[tuple[str, Any]] = field(default_factory=list)
    #: (key, value or None): state the stage must persist (its metadata), besides the mirrored rows.
    meta: list[tuple[str, Any]] = field(default_factory=list)

    def resolved_views(self) -> list[tuple[str, tuple, dict[str, Any] | None]]:
        return [(view, key, view_row(row)) for view, key, row in self.views]

    def extend(self, other: "Effects") -> None:
        self.views += other.views
        self.events += other.events
        self.rollup += other.rollup
        self.meta += other.meta


def view_row(row: Any) -> dict[str, Any] | None:
    """The row itself, or what its callable gives now."""
    return row() if callable(row) else row
