"""End-to-end latency: the source commit time travels with the records it caused.

The capture stamps every change event with its transaction's commit time
(``source.ts_ms`` of the Debezium envelope). The processors copy it into a
Kafka header, ``psmesh-commit-ms``, on every record they send because of that
change: the internal hops, the view events and the derived events. A sink
observes ``now - commit time`` once the row is committed in its database, in
the histogram ``psmesh_e2e_latency_seconds{sink, table}``. Snapshot rows have
no commit time of their own and carry no header; neither do the views a
restarted worker re-publishes.
"""

from __future__ import annotations

from typing import Any

COMMIT_HEADER = "psmesh-commit-ms"

#: Buckets from 50 ms to 10 minutes: a live mesh answers in well under a second,
#: a backlog being replayed in minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)


def commit_ms_of(envelope: dict[str, Any]) -> str | None:
    """The commit time of a change event, in ms since the epoch as the header spells it; None for snapshot rows."""
    source = envelope.get("source") or {}
    if source.get("snapshot") != "false" or not source.get("ts_ms"):
        return None
    return str(int(source["ts_ms"]))


def commit_time_ms(headers: Any) -> int | None:
    """The commit time in a record's headers (confluent-kafka's list of pairs, or a dict), if any."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:
        if name == COMMIT_HEADER and value:
            try:
                return int(value)
            except ValueError:
                return None
    return None
