"""Where a change event stands in its source's commit order: the ``psmesh-position`` header.

The capture is at least once. After a crash, or a stop that could not wait for Kafka, it publishes again
from the slot's confirmed position what it had published already, so a partition of a change topic can hold,
after a row's newest version, some of its older ones again. Folded as they come, they would take a view back
for a moment and make a derived event that numbers its changes (a demand state, a project update) count a
change that never happened, under a new id.

So the capture puts on every change event (and on the tombstone after a delete) a Kafka header,
``psmesh-position``, in ASCII: ``<commit_lsn>,<commit_ms>,<change_lsn>``.

- ``commit_lsn``: the LSN of its transaction's commit record. Transactions are published in commit order, so
  along one partition it never goes down, except where a repeat begins.
- ``commit_ms``: the transaction's commit time, in ms since the epoch (``source.ts_ms``).
- ``change_lsn``: the change's own WAL position (``source.lsn``), increasing within a transaction.

Snapshot rows carry none. A snapshot row is its row as of the snapshot's consistent point, later than
anything published before it; and when a table added to a source is snapshotted while the stream goes on, a
deletion committed before that point may still come after it, for a row an interrupted earlier attempt
published (streams/source.py, ``_catch_up``): a mark moved by the snapshot would leave that deletion out.

Positions only grow along a partition because the capture's producer is idempotent (streams/publisher.py
forces it): a retried request cannot land behind a later one. A producer without idempotence can reorder a
partition's records on a retry, and the rule below would then take a change of another row, landed late, for a
repeat and leave it out; so only the capture, or a producer that keeps its partitions in order, may set the
header. (A repeat from an old producer's request that lands after a new capture's own events is a repeat of
them: the new capture publishes again everything the old one had not had confirmed.)

A consumer keeps, per partition, a mark: the position of the last event it took and the latest commit time
it has seen (:func:`advance`). An event is a repeat, and left out, when its position is before the mark's
and its commit time is not after the latest one seen. Both must hold because a position is only comparable
within one database cluster: a source restored elsewhere, or a standby promoted, may number its WAL below
what the old one published, and its new transactions are told apart by their commit times, which a repeat
keeps. An event at the mark's very position is taken: a change published as two events (a key change's
delete and create) shares it, and taking the last event again changes nothing. An event without the header
(published before it existed, or by another producer) is taken and leaves the mark as it is.
"""

from __future__ import annotations

from typing import Any

HEADER = "psmesh-position"


def encode(commit_lsn: int, commit_ms: int, change_lsn: int) -> bytes:
    return b"%d,%d,%d" % (commit_lsn, commit_ms, change_lsn)


def head(commit_lsn: int, commit_ms: int) -> bytes:
    """The part of a transaction's positions its changes share: its position is ``head + b"%d" % change_lsn``."""
    return b"%d,%d," % (commit_lsn, commit_ms)


def parse(value: bytes | None) -> tuple[int, int, int] | None:
    """(commit_lsn, commit_ms, change_lsn) of a header value; None if it is not one (then nothing is assumed)."""
    if not value:
        return None
    parts = value.split(b",")
    if len(parts) != 3:
        return None
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None


def of(headers: Any) -> tuple[int, int, int] | None:
    """The position in a record's headers (a list of (name, value) pairs, as Kafka clients give them, or a
    dict), if any."""
    if not headers:
        return None
    if isinstance(headers, dict):
        return parse(headers.get(HEADER))
    for name, value in headers:
        if name == HEADER:
            return parse(value)
    return None


def advance(mark: list[int] | None, position: tuple[int, int, int]) -> list[int] | None:
    """The mark after an event at ``position`` (``[commit_lsn, change_lsn, latest commit_ms]``), or None if the
    event is a repeat and is left out (the mark stays)."""
    commit_lsn, commit_ms, change_lsn = position
    if mark is None:
        return [commit_lsn, change_lsn, commit_ms]
    latest = mark[2]
    if commit_ms <= latest and (commit_lsn < mark[0] or (commit_lsn == mark[0] and change_lsn < mark[1])):
        return None
    return [commit_lsn, change_lsn, commit_ms if commit_ms > latest else latest]
