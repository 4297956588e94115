"""What one batch of events produced, coalesced before anything touches Kafka.

The worker takes events in batches (``faust_fixes.take_batches``) and folds them
one row at a time, in order; what the rows produce is collected here and
published once per batch. Collecting coalesces by key, the last value
winning: a mirrored row or a stage's metadata is written once, a view row is
published once (and only when it differs from the row last published), a
rollup contribution is sent once. Derived events are kept, in order, as they
are: each carries its own id. Every output remembers its :class:`Cause`, the
row that produced it last, for the commit-time header it passes on
(psmesh/latency.py) and for the dead-letter topic.

The rows bound for a stage travel in one message per stage partition per
batch (:func:`stage_partition` chooses it as the producer's partitioner would
for the row's key, so interactive queries still find the owner), split into
messages of at most :data:`MESSAGE_BYTES` (:func:`messages`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka.partitioner import murmur2

from processors.effects import Effects
from processors.records import dumps
from psmesh.latency import COMMIT_HEADER

#: The most bytes of a message between stages. librdkafka refuses a record over its ``message.max.bytes`` (1 MB
#: by default, the broker's default limit too); a router batch of 4,000 time entries of one project came to 1.06 MB
#: in one message (tests/unit/processors/test_batch.py).
MESSAGE_BYTES = 256 * 1024


class Cause(NamedTuple):
    """The row an output comes from: its Faust event, and the row's own key and bytes, or its item in a batch
    message (whose first field, its stage key, is the key its dead letter gives).

    A named tuple rather than a frozen dataclass: one is made per row of every batch, and a frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field) was a visible share of a stage's time in a profile."""

    event: Any
    key: bytes | None
    value: bytes | None
    commit_ms: str | None = None
    #: the row's item in a batch message, encoded only if it is dead-lettered
    item: Any = None

    @property
    def headers(self) -> dict[str, bytes] | None:
        return {COMMIT_HEADER: self.commit_ms.encode()} if self.commit_ms else None


_PARTITION_CACHE: dict[tuple[bytes, int], int] = {}


def stage_partition(key: bytes, partitions: int) -> int:
    """The partition the default partitioner (murmur2, as Kafka's Java client) gives ``key``."""
    found = _PARTITION_CACHE.get((key, partitions))
    if found is None:
        found = _PARTITION_CACHE[(key, partitions)] = (murmur2(key) & 0x7FFFFFFF) % partitions
    return found


#: Rows of a message encoded first to estimate its size (see :func:`messages`).
_SAMPLE_ROWS = 64


def messages(rows: list[Any], limit: int = MESSAGE_BYTES) -> list[bytes]:
    """``rows`` as JSON arrays of at most ``limit`` bytes each, in order (a row longer than that goes alone);
    one array is the bytes ``dumps(rows)`` gives.

    One ``dumps`` call per message rather than one per row, which cost 6-10 µs per routed row where the whole
    array costs under 2 µs. Rows whose first :data:`_SAMPLE_ROWS` put the whole over the limit are cut by
    count before the whole is encoded, so that most rows are encoded once: a router batch's message to a stage
    partition is about the limit, and encoding it whole only to find it over and encode its parts again was
    half of the JSON the router wrote.
    """
    if not rows:
        return []
    if len(rows) > _SAMPLE_ROWS:
        estimate = len(dumps(rows[:_SAMPLE_ROWS])) * len(rows) // _SAMPLE_ROWS
        if estimate > limit:
            return _cut(rows, estimate, limit)
    return _whole(rows, limit)


def _whole(rows: list[Any], limit: int) -> list[bytes]:
    """``rows`` in one message if they fit (or are one row), else cut by their encoded size."""
    whole = dumps(rows)
    if len(whole) <= limit or len(rows) == 1:
        return [whole]
    return _cut(rows, len(whole), limit)


def _cut(rows: list[Any], size: int, limit: int) -> list[bytes]:
    """``rows``, of about ``size`` bytes in all, cut by count into parts each expected to fit; each part is
    encoded whole, and cut again if it does not fit."""
    parts = -(-size * 10 // (limit * 9))  # aim at 90 % of the limit: rows differ in length
    count = -(-len(rows) // parts)
    return [body for start in range(0, len(rows), count) for body in _whole(rows[start:start + count], limit)]


_TABLE_KEYS: dict[tuple, bytes] = {}
_TABLE_KEYS_MAX = 1_000_000


def table_key(key: tuple) -> bytes:
    """A view row's key as published rows and queries spell it: its columns joined by '|'.

    Remembered per key tuple: the same rows are touched batch after batch (the rollup names every week of a
    skill for each resource's contribution), and formatting dates was a visible part of a batch's time.
    """
    found = _TABLE_KEYS.get(key)
    if found is None:
        if len(_TABLE_KEYS) >= _TABLE_KEYS_MAX:
            _TABLE_KEYS.clear()
        found = _TABLE_KEYS[key] = "|".join(map(str, key)).encode()
    return found


@dataclass
class Outbox:
    #: (table name, key) → (event whose partition the write belongs to, row or None to delete)
    writes: dict[tuple[str, bytes], tuple[Any, Any]] = field(default_factory=dict)
    #: (view, table key) → [key tuple, row or None, cause, resend]
    views: dict[tuple[str, bytes], list] = field(default_factory=dict)
    #: (topic, key record, value record, cause), in order
    events: list[tuple[str, dict[str, Any], dict[str, Any], Cause]] = field(default_factory=list)
    #: contribution key → (value or None, cause)
    rollup: dict[str, tuple[Any, Cause]] = field(default_factory=dict)
    #: (stage letter, partition) → rows forwarded by the router: [key, kind, id, row, commit ms]
    forwards: dict[tuple[str, int], list[list[Any]]] = field(default_factory=dict)
    #: rows whose content a stage could not fold, with the error: dead-lettered with the batch
    refused: list[tuple[Cause, Exception]] = field(default_factory=list)

    def write(self, table: str, key: bytes, event: Any, row: Any) -> None:
        self.writes[(table, key)] = (event, row)

    def add(self, fx: Effects, cause: Cause, meta_table: str | None = None, partition: int | None = None,
            resend: bool = False) -> None:
        """Collect a stage's effects; ``resend`` publishes its view rows even when unchanged."""
        for code, meta in fx.meta:
            assert meta_table is not None
            self.write(meta_table, f"{partition}|{code}|meta|".encode(), cause.event, meta)
        views = self.views
        for view, key, row in fx.views:
            slot = (view, table_key(key))
            earlier = views.get(slot) if not resend else None
            views[slot] = [key, row, cause, resend or (earlier is not None and earlier[3])]
        for topic, key, value in fx.events:
            self.events.append((topic, key, value, cause))
        for key, value in fx.rollup:
            self.rollup[key] = (value, cause)
