"""Where a change event stands in its source's commit order: the ``psmesh-position`` header.

The capture is at least once. After a crash, or a stop that could not wait for Kafka, it publishes again
from the slot's confirmed position what it had published already, so a partition of a change topic can hold,
after a row's newest version, some of its older ones again. Folded as they come, they would take a view back
for a moment and make a derived event that numbers its changes (a demand state, a project update) count a
change that never happened, under a new id.

So the capture puts on every streamed change event (and on the tombstone after a delete) a Kafka header,
``psmesh-position``, in ASCII: ``<origin>,<commit_lsn>,<change_lsn>``.

- ``origin``: ``<system identifier>.<timeline>.<epoch>``. The first two are the PostgreSQL cluster's and the
  timeline's the capture streams from (``IDENTIFY_SYSTEM``): a database re-created from a dump has another system
  identifier, and one recovered to a point in time, or a standby promoted, another timeline; either may number
  its WAL below what the old one published. The epoch (the capture's state file) covers what those two do not:
  it moves on (a) when the server's WAL ends before the position up to which Kafka acknowledged the
  capture's events, or its slot stands before the position the capture confirmed, as after a restore from a
  physical backup or a disk snapshot, which keep the system identifier and may keep the timeline (and after a
  crash of PostgreSQL before it saved the slot: repeats then go through once, nothing is lost); and (b) when Kafka refused one of the capture's events other than by a purge: librdkafka's
  idempotent producer then goes on with the later events of the partition (a message timed out leaves a gap),
  so the partition may hold later positions than a change it never got, which the next run sends again.
- ``commit_lsn``: the LSN of its transaction's commit record. Transactions are published in commit order, so
  along one partition, within one origin, it never goes down, except where a repeat begins.
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

A consumer keeps, per partition, a mark: the origin and position of the last event it took
(:func:`advance`). An event of the mark's origin positioned before the mark is a repeat, and left out. An
event of another origin is taken and starts a new mark: nothing is compared across clusters or timelines, so
a source moved to another one loses nothing (its first changes may show a row older for a moment if the old
one's last changes come again). An event at the mark's very position is taken: a change published as two
events (a key change's delete and create) shares it, and taking the last event again changes nothing. An
event without the header (published before it existed, or by another producer) is taken and leaves the mark
as it is.
"""

from __future__ import annotations

from typing import Any

HEADER = "psmesh-position"


def origin(system_identifier: str | int, timeline: int, epoch: int = 0) -> bytes:
    return b"%s.%d.%d" % (str(system_identifier).encode(), timeline, epoch)


def head(origin: bytes, commit_lsn: int) -> bytes:
    """The part of a transaction's positions its changes share: its position is ``head + b"%d" % change_lsn``."""
    return b"%s,%d," % (origin, commit_lsn)


def encode(origin: bytes, commit_lsn: int, change_lsn: int) -> bytes:
    return head(origin, commit_lsn) + b"%d" % change_lsn


def parse(value: bytes | None) -> tuple[str, int, int] | None:
    """(origin, commit_lsn, change_lsn) of a header value; None if it is not one (then nothing is assumed)."""
    if not value:
        return None
    parts = value.split(b",")
    if len(parts) != 3:
        return None
    try:
        return parts[0].decode("ascii"), int(parts[1]), int(parts[2])
    except ValueError:  # UnicodeDecodeError is one
        return None


def of(headers: Any) -> tuple[str, int, int] | None:
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


def advance(mark: list | None, position: tuple[str, int, int]) -> list | None:
    """The mark after an event at ``position`` (``[origin, commit_lsn, change_lsn]``), or None if the event is a
    repeat and is left out (the mark stays)."""
    source, commit_lsn, change_lsn = position
    if mark is not None and mark[0] == source and (
            commit_lsn < mark[1] or (commit_lsn == mark[1] and change_lsn < mark[2])):
        return None
    return [source, commit_lsn, change_lsn]
