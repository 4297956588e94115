"""Table recovery that never receives a changelog partition's records is fetched again (Processors._kick_recovery)."""

from __future__ import annotations

import asyncio
from collections import Counter

from faust.types import TP

from processors.app import RECOVERY_STALL_SECONDS, Processors

EMPTY_STORE, HALF_READ, DONE, READING = (TP("x-routes-changelog", p) for p in range(4))


class Recovery:
    """What Faust's Recovery exposes that the watchdog reads, as a worker stuck like the CI run's second worker."""

    def __init__(self, started: float | None) -> None:
        self.in_recovery = started is not None
        self._recovery_started_at = started
        self.active_offsets = Counter({EMPTY_STORE: -1, HALF_READ: 41, DONE: 9, READING: 3})
        self._remaining = Counter({EMPTY_STORE: 12, HALF_READ: 7, DONE: 0, READING: 5})
        self._active_events_received_at = {READING: started}

    def active_remaining(self) -> Counter:
        return self._remaining


class Consumer:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def resume_partitions(self, tps) -> None:
        self.calls.append(("resume", *tps))

    async def seek(self, tp, offset) -> None:
        self.calls.append(("seek", tp, offset))


def kick(recovery: Recovery, now: float) -> tuple[list, list]:
    consumer = Consumer()
    stalled = asyncio.run(Processors._kick_recovery(recovery, consumer, now))
    return stalled, consumer.calls


def test_partitions_recovery_waits_on_and_never_received_are_fetched_again_from_where_it_started():
    stalled, calls = kick(Recovery(started=100.0), now=100.0 + RECOVERY_STALL_SECONDS)
    assert stalled == [EMPTY_STORE, HALF_READ]  # not the one done, nor the one being read
    assert calls == [("resume", EMPTY_STORE), ("seek", EMPTY_STORE, 0),  # an empty store: from the start
                     ("resume", HALF_READ), ("seek", HALF_READ, 41)]


def test_nothing_is_fetched_again_before_the_stall_time_or_outside_recovery():
    assert kick(Recovery(started=100.0), now=100.0 + RECOVERY_STALL_SECONDS - 0.1) == ([], [])
    assert kick(Recovery(started=None), now=1e9) == ([], [])
