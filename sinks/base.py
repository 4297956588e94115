"""The extension point: a Sink turns decoded records into idempotent writes of one database.

The runner (:mod:`sinks.runner`) owns consumption, batching, retries, dead
letters and offset commits; a sink says which topics it reads
(:meth:`Sink.contracts`), makes its target ready (:meth:`Sink.setup`), turns
one record into writes (:meth:`Sink.prepare`, pure, may reject the record)
and applies a batch of writes in the caller's transaction
(:meth:`Sink.write`, usually :func:`sinks.statements.apply_writes`). Every
write must be idempotent: the runner replays a batch after any failure, and
Kafka redelivers what was not committed before a crash.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from sinks.records import Contract, SinkRecord


class Action(enum.Enum):
    #: insert, or on conflict set every non-key column (latest wins).
    UPSERT = "upsert"
    #: insert, or on conflict set the non-key columns only when one differs (a replay changes nothing).
    UPSERT_IF_CHANGED = "upsert_if_changed"
    #: insert, or on conflict do nothing (the first write wins; later ones never overwrite).
    INSERT_ONCE = "insert_once"
    #: delete the row of the key, if any.
    DELETE = "delete"
    #: delete every row of the table.
    TRUNCATE = "truncate"


@dataclass(frozen=True, slots=True)
class Write:
    """One row-level write of one record.

    ``record`` is kept so that a write the database refuses can be
    dead-lettered with the record's original bytes and position.
    """

    record: SinkRecord
    table: str
    action: Action
    key: tuple[Any, ...] = ()
    row: dict[str, Any] | None = None


class Sink(ABC):
    """A database target fed by some topics (see the module docstring for the contract)."""

    #: The sink's name: the consumer group suffix, the metrics label and the dead letters' ``stage``.
    name: str

    @abstractmethod
    def contracts(self) -> dict[str, Contract]:
        """Reader schemas of every input topic, by topic name."""

    @abstractmethod
    def setup(self, engine: Engine) -> None:
        """Make the target ready (create absent tables from metadata, or check that they exist)."""

    @abstractmethod
    def prepare(self, record: SinkRecord) -> list[Write]:
        """The writes of one record (none for a record the sink ignores).

        Pure: raises :class:`~sinks.exceptions.RecordRejected` for a record
        that can never be written, whatever the database's state.
        """

    @abstractmethod
    def write(self, conn: Connection, writes: Sequence[Write]) -> Counter[str]:
        """Apply ``writes`` (in consumption order) in the caller's transaction; rows written per table."""

    def after_batch(self, engine: Engine, changed: bool) -> None:
        """Called after every batch the runner settled, and when a poll found nothing (``changed`` false).

        ``changed`` is true when the batch's committed transaction wrote rows.
        For work that follows the target's state (the reporting store's KPI
        snapshots); it must not raise for a transient fault. Nothing by default.
        """
