"""processors/faust_fixes.py ``Feed``: the router's records in the lists the fetch gives, acknowledged as Faust's
own consumer acknowledges them one by one.

The consumer here is faust-streaming's own (its ``ack``, ``_new_offset`` and
partition bookkeeping), made by an app that never connects; only the fetch
is left out: lists of aiokafka records are offered as the drain loop offers
them.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from processors import faust_fixes

TOPIC = "src"
TP0, TP1 = TP(TOPIC, 0), TP(TOPIC, 1)


def _app(tmp_path, name: str = "feed"):
    app = faust.App(f"{name}-{tmp_path.name}", broker="kafka://127.0.0.1:1", store="memory://",
                    datadir=str(tmp_path / name))
    app.topics._acking_topics.add(TOPIC)  # as subscribing an agent to the topic makes it
    app.flow_control.resume()
    return app


def _records(partition: int, *offsets: int) -> list[ConsumerRecord]:
    return [ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k%d" % offset, b"v%d" % offset, None, 2, 2,
                           (("h", b"1"),)) for offset in offsets]


def _fetching_both(tmp_path, limit: int):
    """An app whose consumer fetches both partitions, and a feed of ``limit`` records for them."""
    app = _app(tmp_path)
    app.consumer._set_active_tps({TP0, TP1})
    return app, app.consumer, faust_fixes.Feed(app, {TOPIC}, limit=limit)


def _stream():
    channel = SimpleNamespace(queue=None)
    channel.__aiter__ = lambda: channel
    return SimpleNamespace(channel=channel, should_stop=False)


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def _state(consumer, tp):
    return list(consumer._acked[tp]), set(consumer._acked_index[tp]), consumer._n_acked, consumer._new_offset(tp)


def test_lists_are_handed_over_in_order_up_to_max_and_acknowledged_as_faust_acknowledges_each(tmp_path):
    app = _app(tmp_path)
    consumer, generation = app.consumer, app.consumer_generation_id
    fed = faust_fixes.Feed(app, {TOPIC}, limit=1000)

    async def go():
        fed.offer(consumer, TP0, generation, _records(0, 0, 1, 2, 3, 4))
        fed.offer(consumer, TP1, generation, _records(1, 100, 101, 102))
        fed.offer(consumer, TP0, generation, _records(0, 5, 6))
        batches = fed.batches(_stream(), 6, 0.01)
        first = await batches.__anext__()
        second = await batches.__anext__()
        assert consumer._acked[TP0] == []  # taking the next list acknowledges nothing: the caller says when
        first.ack()
        first.ack()  # once only
        after_first = _state(consumer, TP0)
        await batches.aclose()  # the caller stopped before settling the second list: it stays unacknowledged
        return first, second, after_first

    first, second, after_first = _run(go())
    # each list takes evenly from the partitions, each partition's records in order
    assert [(e.message.tp, e.message.offset, e.key, e.value) for e in first] == [
        (TP0, 0, b"k0", b"v0"), (TP0, 1, b"k1", b"v1"), (TP0, 2, b"k2", b"v2"), (TP1, 100, b"k100", b"v100"),
        (TP1, 101, b"k101", b"v101"), (TP1, 102, b"k102", b"v102")]
    assert [(e.message.partition, e.message.offset) for e in second] == [(0, 3), (0, 4), (0, 5), (0, 6)]
    assert first[0].message.topic == TOPIC and first[0].headers == {"h": b"1"}

    # the same records acknowledged one by one by Faust's own consumer
    reference = _app(tmp_path, "reference").consumer
    for offset in range(3):
        reference.ack(ConsumerMessage(TOPIC, 0, offset, 0.0, 0, [], b"", b"", None, 0, 0, TP0))
    for offset in range(100, 103):
        reference.ack(ConsumerMessage(TOPIC, 1, offset, 0.0, 0, [], b"", b"", None, 0, 0, TP1))
    assert after_first == _state(reference, TP0) == ([0, 1, 2], {0, 1, 2}, 6, 3)
    assert _state(consumer, TP1) == _state(reference, TP1)
    assert 3 not in consumer._acked_index[TP0]  # the second list was never acknowledged


def test_a_list_takes_the_same_stretch_of_every_partition_and_gives_a_short_partition_s_share_to_the_others(
        tmp_path):
    app = _app(tmp_path)
    consumer, generation = app.consumer, app.consumer_generation_id
    tp2 = TP(TOPIC, 2)
    fed = faust_fixes.Feed(app, {TOPIC}, limit=1000)

    async def go():
        fed.offer(consumer, TP0, generation, _records(0, *range(0, 40)))  # as a fetch hands them over: one
        fed.offer(consumer, TP1, generation, _records(1, *range(100, 140)))  # partition's whole backlog after
        fed.offer(consumer, tp2, generation, _records(2, 200, 201))  # another's
        fed.offer(consumer, TP0, generation, _records(0, 40, 41))
        batches = fed.batches(_stream(), 30, 0.01)
        lists = [await batches.__anext__() for _ in range(3)]
        await batches.aclose()
        return [[(e.message.partition, e.message.offset) for e in taken] for taken in lists]

    first, second, third = _run(go())
    assert first == [(0, o) for o in range(14)] + [(1, o) for o in range(100, 114)] + [(2, 200), (2, 201)]
    assert second == [(0, o) for o in range(14, 29)] + [(1, o) for o in range(114, 129)]
    assert third == [(0, o) for o in range(29, 42)] + [(1, o) for o in range(129, 140)]
    assert fed._count == 0


def test_an_offset_missing_inside_a_list_is_acknowledged_so_the_commit_moves_past_it(tmp_path):
    app = _app(tmp_path)
    fed = faust_fixes.Feed(app, {TOPIC}, limit=1000)

    async def go():
        fed.offer(app.consumer, TP0, app.consumer_generation_id, _records(0, 0, 1, 4, 5))  # 2, 3: compacted away
        batches = fed.batches(_stream(), 10, 0.01)
        (await batches.__anext__()).ack()
        fed.offer(app.consumer, TP0, app.consumer_generation_id, _records(0, 6))
        await batches.__anext__()
        await batches.aclose()

    _run(go())
    assert app.consumer._new_offset(TP0) == 6


def test_offsets_below_the_committed_one_or_acknowledged_already_are_not_acknowledged_again(tmp_path):
    app = _app(tmp_path)
    consumer = app.consumer
    consumer._committed_offset[TP0] = 3
    consumer.ack(ConsumerMessage(TOPIC, 0, 4, 0.0, 0, [], b"", b"", None, 0, 0, TP0))
    faust_fixes._ack_ranges(consumer, [(TP0, _records(0, 0, 1, 2, 3, 4, 5))])
    faust_fixes._ack_ranges(consumer, [(TP0, _records(0, 5))])
    assert sorted(consumer._acked[TP0]) == [3, 4, 5] and consumer._n_acked == 3


@pytest.mark.parametrize("change", ["rebalance before the list is taken", "flow stopped", "rebalance while handled"])
def test_records_of_an_earlier_assignment_are_never_acknowledged(tmp_path, change):
    app = _app(tmp_path)
    fed = faust_fixes.Feed(app, {TOPIC}, limit=1000)
    generation = app.consumer_generation_id

    async def go():
        fed.offer(app.consumer, TP0, generation, _records(0, 0, 1))
        if change == "rebalance before the list is taken":
            app.consumer_generation_id = generation + 1
        elif change == "flow stopped":
            app.flow_control.suspend()
        batches = fed.batches(_stream(), 10, 0.01)
        if change != "rebalance while handled":  # nothing to hand on: the feed waits for more
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(batches.__anext__(), 0.2)
            return None
        taken = await batches.__anext__()
        app.consumer_generation_id = generation + 1
        fed.offer(app.consumer, TP0, generation + 1, _records(0, 0))
        await batches.__anext__()
        await batches.aclose()
        return [e.offset for e in taken]

    taken = _run(go())
    assert app.consumer._acked[TP0] == []  # read again from the committed offset, by whoever owns it now
    if change == "rebalance while handled":
        assert taken == [0, 1]


def test_a_list_in_hand_holds_up_a_rebalance_until_it_is_acknowledged(tmp_path):
    app = _app(tmp_path)
    consumer = app.consumer
    fed = faust_fixes.Feed(app, {TOPIC}, limit=1000)

    async def go():
        fed.offer(consumer, TP0, app.consumer_generation_id, _records(0, 0))
        batches = fed.batches(_stream(), 10, 0.01)
        await batches.__anext__()
        pending = len(consumer._unacked_messages)
        fed.offer(consumer, TP0, app.consumer_generation_id, _records(0, 1))
        await batches.__anext__()
        pending_after = [m.acked for m in consumer._unacked_messages]
        await batches.aclose()
        return pending, pending_after

    pending, pending_after = _run(go())
    assert pending == 1  # what Consumer.wait_empty waits for
    assert pending_after == [False]  # the first list's is gone once acknowledged; the second's is in hand
    # every message Faust's wait_empty logs has what it reads
    assert all(hasattr(m, "refcount") and hasattr(m, "acked") for m in consumer._unacked_messages)


def test_a_full_feed_takes_its_partitions_out_of_the_fetch_until_it_is_half_empty(tmp_path):
    app, consumer, fed = _fetching_both(tmp_path, limit=10)

    async def go():
        generation = app.consumer_generation_id
        fed.offer(consumer, TP0, generation, _records(0, *range(6)))
        assert consumer._active_partitions == {TP0, TP1}
        fed.offer(consumer, TP1, generation, _records(1, *range(6)))
        assert consumer._active_partitions == {TP0} and consumer._buffered_partitions == {TP1}
        batches = fed.batches(_stream(), 4, 0.01)
        await batches.__anext__()  # 8 left: more than half
        assert consumer._buffered_partitions == {TP1}
        await batches.__anext__()  # 4 left
        assert consumer._active_partitions == {TP0, TP1} and not consumer._buffered_partitions
        await batches.aclose()

    _run(go())


def test_a_partition_held_before_a_rebalance_is_left_to_the_new_assignment(tmp_path):
    app, consumer, fed = _fetching_both(tmp_path, limit=2)

    async def go():
        fed.offer(consumer, TP1, app.consumer_generation_id, _records(1, 0, 1))
        assert consumer._buffered_partitions == {TP1}
        app.consumer_generation_id += 1
        consumer._set_active_tps({TP0})  # TP1 went to another worker
        fed.offer(consumer, TP0, app.consumer_generation_id, _records(0, 0))
        batches = fed.batches(_stream(), 10, 0.01)
        await batches.__anext__()
        await batches.aclose()

    _run(go())
    assert consumer._active_partitions == {TP0} and not consumer._buffered_partitions


def test_the_drain_hands_a_partition_list_over_with_faust_read_offsets_and_gaps(tmp_path):
    app = _app(tmp_path)
    consumer = app.consumer
    fed = faust_fixes.Feed(app, {TOPIC}, limit=1000)
    gaps = []

    async def add_gap(tp, start, end):
        gaps.append((tp, start, end))

    consumer._add_gap = add_gap

    async def go():
        consumer._read_offset[TP0] = 4  # read up to 4 (a seek back makes the fetch give 3 and 4 again)
        await faust_fixes._hand_over(consumer, fed, TP0, _records(0, 3, 4, 5), app.consumer_generation_id)
        await faust_fixes._hand_over(consumer, fed, TP0, _records(0, 8, 9), app.consumer_generation_id)
        await faust_fixes._hand_over(consumer, fed, TP0, _records(0, 2), app.consumer_generation_id)
        return {key: [r.offset for r in records] for key, records in fed._lists.items()}

    # as Faust's loop: offsets from the read offset on
    assert _run(go()) == {(TP0, app.consumer_generation_id): [4, 5, 8, 9]}
    assert gaps == [(TP0, 6, 8)] and consumer._read_offset[TP0] == 9


def test_feed_registers_its_topics_with_the_drain_loop_once_installed(tmp_path):
    app = _app(tmp_path)
    assert faust_fixes.install() is True
    fed = faust_fixes.feed(app, {TOPIC, "other"}, 100)
    assert faust_fixes.fed(app, TOPIC) and faust_fixes.fed(app, "other") and not faust_fixes.fed(app, "third")
    assert getattr(app, faust_fixes._FEEDS) == {TOPIC: fed, "other": fed}


def test_the_installed_faust_consumer_has_what_the_feed_takes_over():
    """The feed keeps Faust's per-record bookkeeping in Faust's own structures; if a new Faust changes them,
    this fails."""
    import inspect

    from faust.transport.consumer import Consumer

    ack = inspect.getsource(Consumer.ack)
    for line in ("if committed is None or offset >= committed:", "acked_index.add(offset)",
                 "acked_for_tp.append(offset)", "self._n_acked += 1", "notify(self._waiting_for_ack)"):
        assert line in ack
    getmany = inspect.getsource(Consumer.getmany)
    assert "records, active_partitions = await self._wait_next_records(timeout)" in getmany
    assert "or tp in self._buffered_partitions" in getmany
    wait_empty = inspect.getsource(Consumer.wait_empty)
    assert "(m.refcount, m) for m in self._unacked_messages" in wait_empty


def test_the_agent_fed_is_among_the_waiting_only_while_no_record_is_fetched(tmp_path):
    app = _app(tmp_path)
    fed = faust_fixes.Feed(app, {TOPIC}, limit=1000)
    agents: set[str] = set()

    async def go():
        batches = fed.batches(_stream(), 10, 0.01, faust_fixes.Waiting(agents, "route"))
        taking = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0.05)
        seen_waiting = set(agents)
        fed.offer(app.consumer, TP0, app.consumer_generation_id, _records(0, 0, 1))
        first = await taking
        seen_handling = set(agents)
        await batches.aclose()
        return seen_waiting, len(first), seen_handling

    assert _run(go()) == ({"route"}, 2, set())
