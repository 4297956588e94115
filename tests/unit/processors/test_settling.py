"""An agent handles its next batch while the one before is still on its way to the broker (processors/app.py
``_batches``): batches are settled (outputs acknowledged, then the mirror written, then the events acknowledged) in
the order they were handled, and after a failure every batch not settled is handled again, in order, before any
new one. The router, meanwhile, finds a row's route among those of batches not settled yet.

The batches are the router's, on Faust's memory store; the sender records what it would produce, and its waits for
the broker's acknowledgements are held or failed as each test needs.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from processors.app import PARTITIONS, Processors
from processors.batch import stage_partition
from processors.faust_fixes import Taken
from processors.records import loads
from processors.sender import DeliveryFailed, ProducerFailed
from tests.unit.processors.test_route_coalesce import BY_PROJECT, JsonDecoder, change, entry
from tests.unit.processors.worker_fakes import RecordingSender, worker

PRJ_1, PRJ_2 = stage_partition(b"PRJ-1", PARTITIONS), stage_partition(b"PRJ-2", PARTITIONS)


class HeldSender(RecordingSender):
    """Numbers its tickets; a wait on a ticket in ``held`` returns only once the test releases it, and the first
    wait on a ticket in ``failing`` raises as a broker that refused a record would."""

    def __init__(self, held: set[int] = frozenset(), failing: set[int] = frozenset()) -> None:
        super().__init__()
        self.tickets = 0
        self.held = {n: asyncio.Event() for n in held}
        self.failing = set(failing)

    def ticket(self) -> int:
        self.tickets += 1
        return self.tickets

    def produce(self, ticket, topic, key, value, **kwargs) -> None:
        super().produce(ticket, topic, key, value, **kwargs)
        self.calls[-1] = ("produce", f"{topic}#{ticket}")

    async def wait(self, ticket) -> dict:
        self.calls.append(("wait", f"#{ticket}"))
        if ticket in self.failing:
            self.failing.discard(ticket)
            raise DeliveryFailed(f"ticket {ticket}: the broker refused a record")
        if ticket in self.held:
            await self.held[ticket].wait()
        return {}


def batches(acked: list[str], **named: list) -> object:
    """The router's batches, in order, each acknowledging under its name."""

    async def taken():
        for name, events in named.items():
            yield Taken(events, lambda name=name: acked.append(name))

    return taken()


def forwards(sender: HeldSender) -> list[tuple[int, int, int, str | None]]:
    """(ticket, stage partition, entry_id, project_code or None for a removal) of each row forwarded to a project."""
    out = []
    for (call, topic), (t, partition, value) in zip(
            [c for c in sender.calls if c[0] == "produce"], sender.records):
        if t == BY_PROJECT:
            ticket = int(topic.rsplit("#", 1)[1])
            out += [(ticket, partition, row[2], row[3]["project_code"] if row[3] else None) for row in loads(value)]
    return out


def router(tmp_path: Path, sender: HeldSender) -> Processors:
    processors = worker(tmp_path, sender)
    processors._decoder = JsonDecoder()
    return processors


def moved_entry() -> dict[str, list]:
    """Two batches: entry 1 routed to PRJ-1 by the first, moved to PRJ-2 by the second."""
    return {"first": [change("entry", entry(1, "submitted"), 0, "c")],
            "second": [change("entry", entry(1, "approved", project_code="PRJ-2"), 1)]}


def test_the_next_batch_is_handled_while_the_one_before_settles_and_sees_its_routes(tmp_path: Path):
    sender = HeldSender(held={1})
    processors = router(tmp_path, sender)
    acked: list[str] = []
    moved = batches(acked, **moved_entry())

    async def go():
        agent = asyncio.create_task(processors._batches(moved, "route", processors._route_batch))
        while sender.tickets < 2:  # the second batch is taken while the first waits for the broker
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        handled_before_release = forwards(sender), list(acked)
        routes_before = dict(processors.tables["routes"].data)
        sender.held[1].set()
        await asyncio.wait_for(agent, 5)
        return handled_before_release, routes_before

    (handled, acked_then), routes_before = asyncio.run(go())
    # the second batch moved the entry from PRJ-1 to PRJ-2: it found the first batch's route although the table did
    # not hold it yet, and so took the entry away from PRJ-1
    assert handled == [(1, PRJ_1, 1, "PRJ-1"), (2, PRJ_1, 1, None), (2, PRJ_2, 1, "PRJ-2")]
    assert acked_then == [] and routes_before == {}
    assert acked == ["first", "second"]
    assert loads(processors.tables["routes"].data[b"entry|1"]) == [["p", "PRJ-2"], ["r", "12"]]
    assert processors._unsettled_routes == {}


def test_after_a_failure_every_batch_not_settled_is_handled_again_in_order_before_a_new_one(tmp_path: Path):
    sender = HeldSender(failing={1})
    processors = router(tmp_path, sender)
    acked: list[str] = []
    three = batches(acked, **moved_entry(), third=[change("entry", entry(2, "submitted"), 2, "c")])

    asyncio.run(asyncio.wait_for(processors._batches(three, "route", processors._route_batch), 10))
    assert acked == ["first", "second", "third"]
    # tickets 1 and 2: the batches as first handled; 3 and 4: handled again, in order (the removal from PRJ-1
    # again, the first batch's route being in the table by then); 5: the third batch, only after both
    assert forwards(sender) == [(1, PRJ_1, 1, "PRJ-1"), (2, PRJ_1, 1, None), (2, PRJ_2, 1, "PRJ-2"),
                                (3, PRJ_1, 1, "PRJ-1"), (4, PRJ_1, 1, None), (4, PRJ_2, 1, "PRJ-2"),
                                (5, PRJ_1, 2, "PRJ-1")]
    assert loads(processors.tables["routes"].data[b"entry|1"]) == [["p", "PRJ-2"], ["r", "12"]]
    assert processors._unsettled_routes == {} and processors._recovering == set()


def test_a_stage_tells_when_it_last_settled_a_batch_and_not_before(tmp_path: Path):
    sender = HeldSender(held={1})
    processors = router(tmp_path, sender)

    def settled_at() -> float | None:
        return processors.metrics.registry.get_sample_value(
            "psmesh_processor_last_settled_timestamp_seconds", {"stage": "route"})

    async def go():
        agent = asyncio.create_task(processors._batches(batches([], first=moved_entry()["first"]), "route",
                                                        processors._route_batch))
        while sender.tickets < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        held = settled_at()
        released = time.time()
        sender.held[1].set()
        await asyncio.wait_for(agent, 5)
        return held, released

    held, released = asyncio.run(go())
    assert held is None  # handled, but its outputs not acknowledged yet
    assert released <= settled_at() <= time.time()


def test_a_producer_stopped_for_good_stops_the_worker_without_the_retries(tmp_path: Path, monkeypatch):
    class StoppedSender(HeldSender):
        async def wait(self, ticket) -> dict:
            self.calls.append(("wait", f"#{ticket}"))
            raise ProducerFailed("a record of the batch was not delivered (the producer stopped for good)")

    sender = StoppedSender()
    processors = router(tmp_path, sender)
    crashed: list[Exception] = []

    async def crash(exc: Exception) -> None:
        crashed.append(exc)

    monkeypatch.setattr(processors.app, "crash", crash)
    acked: list[str] = []
    first = batches(acked, first=moved_entry()["first"])

    async def go():
        try:
            await asyncio.wait_for(processors._batches(first, "route", processors._route_batch), 10)
        except ProducerFailed:
            return True
        return False

    assert asyncio.run(go()) is True
    assert len(crashed) == 1 and isinstance(crashed[0], ProducerFailed)
    assert sender.tickets == 1  # handled once: neither a rebuild nor a further attempt
    assert acked == [] and processors.tables["routes"].data.get(b"entry|1") is None
