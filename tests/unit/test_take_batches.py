"""processors/faust_fixes.py ``take_batches``: the lists an agent takes, and when their events are acknowledged."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from processors import faust_fixes


class _Message:
    def __init__(self, offset: int, generation: int = 1, topic: str = "src") -> None:
        self.topic, self.offset, self.generation_id = topic, offset, generation
        self.tp = (topic, 0)
        self.tracked = False


class _Event:
    def __init__(self, log: list, offset: int, **kwargs) -> None:
        self.message = _Message(offset, **kwargs)
        self._log = log

    def ack(self) -> bool:
        self._log.append(self.message.offset)
        return True


class _Channel:
    def __init__(self) -> None:
        # the queue class Faust's channels use, errors thrown into it included
        self.queue = ThrowableQueue(flow_control=FlowControlEvent())

    def __aiter__(self):
        return self


def _stream(generation: int = 1, active: bool = True, rebalancing: bool = False):
    sensors = SimpleNamespace(ins=[], outs=[])
    sensors.on_message_in = lambda tp, offset, message: sensors.ins.append(offset)
    sensors.on_message_out = lambda tp, offset, message: sensors.outs.append(offset)
    app = SimpleNamespace(consumer=SimpleNamespace(unacked=set()), sensors=sensors,
                          topics=SimpleNamespace(acking_topics={"src"}),
                          flow_control=SimpleNamespace(is_active=lambda: active), consumer_generation_id=generation,
                          rebalancing=rebalancing)
    return SimpleNamespace(app=app, channel=_Channel(), should_stop=False)


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def _queued(count: int):
    """A stream with ``count`` events waiting (offsets 0, 1, ...), and the list their acknowledgements go to."""
    stream, acked = _stream(), []
    for offset in range(count):
        stream.channel.queue.put_nowait(_Event(acked, offset))
    return stream, acked


def test_a_full_queue_gives_lists_of_max_and_the_rest_within_its_time():
    async def go():
        stream, acked = _queued(10)
        batches = faust_fixes.take_batches(stream, 4, 0.05)
        sizes = [len(await batches.__anext__()) for _ in range(3)]
        await batches.aclose()
        return sizes

    assert _run(go()) == [4, 4, 2]


def test_a_list_is_acknowledged_when_the_caller_says_so_even_after_taking_the_next_and_never_if_it_does_not():
    async def go():
        stream, acked = _queued(6)
        batches = faust_fixes.take_batches(stream, 3, 0.05)
        first = await batches.__anext__()
        assert acked == [] and [e.message.offset for e in first] == [0, 1, 2]
        await batches.__anext__()
        assert acked == []  # taking the next list acknowledges nothing (the first may still be settling)
        first.ack()
        first.ack()  # once only
        assert acked == [0, 1, 2]
        await batches.aclose()  # the caller failed on the second list: it stays unacknowledged, to be read again
        return acked, stream.app.sensors.outs

    acked, outs = _run(go())
    assert acked == [0, 1, 2] and outs == [0, 1, 2]


def test_events_that_arrive_within_the_time_join_the_list():
    async def go():
        stream, acked = _stream(), []
        queue = stream.channel.queue
        batches = faust_fixes.take_batches(stream, 100, 0.5)
        queue.put_nowait(_Event(acked, 0))
        asyncio.get_running_loop().call_later(0.05, queue.put_nowait, _Event(acked, 1))
        taken = await batches.__anext__()
        await batches.aclose()
        return [e.message.offset for e in taken]

    assert _run(go()) == [0, 1]


@pytest.mark.parametrize("generation, active", [(2, True), (1, False)])
def test_records_of_an_earlier_assignment_are_neither_handed_on_nor_acknowledged(generation, active):
    async def go():
        stream, acked = _stream(generation=generation, active=active), []
        stream.channel.queue.put_nowait(_Event(acked, 0, generation=1))
        if active:
            stream.channel.queue.put_nowait(_Event(acked, 1, generation=2))
        batches = faust_fixes.take_batches(stream, 10, 0.02)
        if not active:  # nothing to hand on: the generator waits for more
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(batches.__anext__(), 0.2)
            return acked, None
        taken = await batches.__anext__()
        await batches.aclose()
        return acked, [e.message.offset for e in taken]

    acked, taken = _run(go())
    assert 0 not in acked  # read again from the committed offset after the rebalance: never skipped by an ack
    if active:
        assert taken == [1]


def test_records_of_acking_topics_are_tracked_as_pending_once():
    async def go():
        stream, acked = _stream(), []
        event = _Event(acked, 7)
        other = _Event(acked, 8, topic="not-acking")
        stream.channel.queue.put_nowait(event)
        stream.channel.queue.put_nowait(other)
        batches = faust_fixes.take_batches(stream, 10, 0.02)
        await batches.__anext__()
        await batches.aclose()
        return stream, event, other

    stream, event, other = _run(go())
    assert stream.app.consumer.unacked == {event.message}
    assert event.message.tracked and not other.message.tracked
    assert stream.app.sensors.ins == [7]


def test_the_stop_faust_throws_into_the_queue_at_shutdown_ends_the_lists_without_acknowledging():
    async def go():
        stream, acked = _stream(), []
        queue = stream.channel.queue
        seen = []

        async def agent():
            async for events in faust_fixes.take_batches(stream, 10, 0.05):
                seen.append([e.message.offset for e in events])
                events.ack()

        task = asyncio.create_task(agent())
        queue.put_nowait(_Event(acked, 0))
        await asyncio.sleep(0.2)
        queue.put_nowait(_Event(acked, 1))
        await asyncio.sleep(0.01)
        queue._throw(StopAsyncIteration())  # as Faust's Stream.stop ends a stream's iteration
        await asyncio.wait_for(task, 2)  # the agent returns; it does not crash
        return seen, acked

    seen, acked = _run(go())
    assert seen == [[0]]
    assert acked == [0]  # the event taken when the stop came is left unacknowledged: read again after a restart


def _first_list(upstream_waiting: bool) -> tuple[bool, int]:
    """A stage with two events queued, a list of four to fill and a minute to fill it, its upstream the router
    (waiting or not): whether it handed a list on within a few turns of the loop, and the list it hands on once
    two more events come."""

    async def go():
        stream, _ = _queued(2)
        waiting = faust_fixes.Waiting({"router"} if upstream_waiting else set(), "stage", frozenset({"router"}))
        batches = faust_fixes.take_batches(stream, 4, 60.0, waiting)
        taking = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0.1)
        early = taking.done()
        for offset in (2, 3):
            stream.channel.queue.put_nowait(_Event([], offset))
        first = await taking
        await batches.aclose()
        return early, len(first)

    return _run(go())


def test_a_list_not_full_waits_for_more_while_an_agent_upstream_is_busy():
    assert _first_list(upstream_waiting=False) == (False, 4)


def test_a_list_not_full_is_handed_on_at_once_when_every_agent_upstream_waits():
    assert _first_list(upstream_waiting=True) == (True, 2)


def test_an_agent_is_among_the_waiting_only_while_it_waits_with_nothing_queued():
    async def go():
        stream, _ = _stream(), []
        agents: set[str] = set()
        batches = faust_fixes.take_batches(stream, 1, 0.05, faust_fixes.Waiting(agents, "stage"))
        taking = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0.05)
        seen_waiting = set(agents)
        stream.channel.queue.put_nowait(_Event([], 0))
        first = await taking
        seen_handling = set(agents)
        await batches.aclose()
        return seen_waiting, len(first), seen_handling

    assert _run(go()) == ({"stage"}, 1, set())


def test_an_agent_with_work_held_back_gets_an_empty_list_when_no_event_comes_and_loses_none_that_comes_later():
    async def go():
        stream, acked = _queued(0)
        holding, agents = [True], set()
        waiting = faust_fixes.Waiting(agents, "stage", frozenset({"router"}))
        batches = faust_fixes.take_batches(stream, 4, 0.05, waiting, idle=lambda: 0.05 if holding[0] else None)
        taking = asyncio.create_task(batches.__anext__())
        await asyncio.sleep(0.3)
        assert not taking.done()  # the router is still at work: more input is on its way
        assert "stage" in agents  # and the stage counts as waiting, for the agents downstream of it
        agents.add("router")
        first = await taking
        assert first == []
        first.ack()  # nothing to acknowledge
        holding[0] = False  # nothing held any more: the agent waits for its next event, however long it takes
        late = asyncio.create_task(batches.__anext__())
        await asyncio.sleep(0.2)
        assert not late.done()
        stream.channel.queue.put_nowait(_Event(acked, 0))
        second = await late
        await batches.aclose()
        return [e.message.offset for e in second]

    assert _run(go()) == [0]


@pytest.mark.parametrize("active, rebalancing", [(False, True), (True, True)])  # flow comes back before the rebuild
def test_no_empty_list_in_a_rebalance(active: bool, rebalancing: bool):
    async def go():
        stream = _stream(active=active, rebalancing=rebalancing)
        agents = {"router"}
        batches = faust_fixes.take_batches(stream, 4, 0.05, faust_fixes.Waiting(agents, "stage", frozenset(agents)),
                                           idle=lambda: 0.05)
        taking = asyncio.create_task(batches.__anext__())
        await asyncio.sleep(0.3)
        done = taking.done()
        taking.cancel()
        return done

    assert _run(go()) is False


def test_an_event_that_comes_within_the_idle_time_is_handed_on_as_usual():
    async def go():
        stream, acked = _queued(0)
        batches = faust_fixes.take_batches(stream, 4, 0.05, idle=lambda: 1.0)
        taking = asyncio.create_task(batches.__anext__())
        await asyncio.sleep(0.1)
        stream.channel.queue.put_nowait(_Event(acked, 7))
        taken = await taking
        await batches.aclose()
        return [e.message.offset for e in taken]

    assert _run(go()) == [7]


def test_work_held_too_long_gets_its_empty_list_though_the_agents_upstream_are_still_at_work():
    async def go():
        stream, acked = _queued(0)
        due = [False]
        waiting = faust_fixes.Waiting(set(), "stage", frozenset({"router"}))  # the router never waits
        batches = faust_fixes.take_batches(stream, 4, 0.05, waiting, idle=lambda: 0.05, due=lambda: due[0])
        taking = asyncio.create_task(batches.__anext__())
        await asyncio.sleep(0.3)
        assert not taking.done()
        due[0] = True
        taken = await taking
        await batches.aclose()
        return taken

    assert _run(go()) == []
