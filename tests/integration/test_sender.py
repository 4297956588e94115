"""The processors' batch producer on the real broker: a ticket completes when every record is on the broker, with
the last offset of each changelog partition, and a record the broker refuses fails the whole ticket."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from processors.sender import DeliveryFailed, ProducerFailed, Sender


@pytest.fixture
def topic(stack_settings) -> str:
    return _topic(stack_settings)


def _topic(settings, config: dict[str, str] | None = None) -> str:
    name = f"test-sender-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka_client_config())
    admin.create_topics([NewTopic(name, 3, 1, config=config or {})])[name].result(30)
    return name


def _raised(sender: Sender, batch, expected: type[Exception]) -> Exception:
    """What running ``batch`` raised (``expected``, or the test fails); the sender is closed either way."""
    try:
        with pytest.raises(expected) as failed:
            asyncio.run(batch())
    finally:
        sender.close()
    return failed.value


def _read_all(settings, topic: str, partition: int) -> list[tuple[bytes, bytes]]:
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"read-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    out = []
    try:
        while True:
            msg = consumer.poll(5)
            if msg is None:
                return out
            assert msg.error() is None, msg.error()
            out.append((msg.key(), msg.value()))
    finally:
        consumer.close()


def test_a_ticket_completes_once_every_record_is_acknowledged_with_the_last_offset_per_table_partition(
        stack_settings, topic):
    sender = Sender(stack_settings.kafka_client_config())
    table = object()  # the table a changelog record belongs to: only its identity matters here
    ticket = None

    async def batch():
        nonlocal ticket
        ticket = sender.ticket()
        for n in range(500):
            sender.produce(ticket, topic, f"k{n}".encode(), f"v{n}".encode(), partition=n % 2, table=table)
        sender.produce(ticket, topic, b"other", b"x", partition=2)  # not a changelog record: no offset kept
        return await sender.wait(ticket)

    try:
        offsets = asyncio.run(batch())
    finally:
        sender.close()
    assert offsets == {(table, 0): 249, (table, 1): 249}
    assert ticket.sent == ticket.delivered == 3  # a report for the last record of each partition only
    records = _read_all(stack_settings, topic, 0)
    assert [k for k, _ in records] == [f"k{n}".encode() for n in range(0, 500, 2)]  # all there, in order


def test_a_record_the_broker_refuses_fails_the_ticket(stack_settings, topic):
    # the client lets it through (its own limit raised), the broker refuses it (over its message.max.bytes)
    sender = Sender({**stack_settings.kafka_client_config(), "message.max.bytes": 8 * 1024 * 1024})

    async def batch():
        ticket = sender.ticket()
        sender.produce(ticket, topic, b"k", b"fine", partition=0)
        sender.produce(ticket, topic, b"k", os.urandom(2 * 1024 * 1024), partition=1)  # lz4 cannot shrink it
        await sender.wait(ticket)

    failed = _raised(sender, batch, DeliveryFailed)
    assert topic in str(failed) and "not delivered" in str(failed)


def test_a_record_the_client_refuses_fails_at_once(stack_settings, topic):
    sender = Sender(stack_settings.kafka_client_config())

    async def batch():
        ticket = sender.ticket()
        sender.produce(ticket, topic, b"k", b"x" * (2 * 1024 * 1024), partition=1)

    failed = _raised(sender, batch, DeliveryFailed)
    assert topic in str(failed)


def test_an_empty_ticket_completes_at_once(stack_settings):
    sender = Sender(stack_settings.kafka_client_config())
    try:
        assert asyncio.run(_wait_empty(sender)) == {}
    finally:
        sender.close()


async def _wait_empty(sender: Sender):
    return await sender.wait(sender.ticket())


def test_a_ticket_can_be_waited_on_again_after_more_records(stack_settings, topic):
    sender = Sender(stack_settings.kafka_client_config())
    table = object()

    async def batch():
        ticket = sender.ticket()
        sender.produce(ticket, topic, b"a", b"1", partition=0, table=table)
        first = dict(await sender.wait(ticket))
        for n in range(100):
            sender.produce(ticket, topic, b"b", str(n).encode(), partition=0, table=table)
        second = await sender.wait(ticket)
        return first, second, ticket

    try:
        first, second, ticket = asyncio.run(batch())
    finally:
        sender.close()
    assert first == {(table, 0): 0}
    assert second == {(table, 0): 100}
    assert ticket.delivered == ticket.sent == 2  # the last record of the partition, at each wait
    assert len(_read_all(stack_settings, topic, 0)) == 101


def test_a_record_the_broker_refuses_before_the_last_of_its_partition_fails_the_ticket(stack_settings):
    """Only the partition's last record has a report: the refusal of an earlier one, sent in a request of its own,
    must still fail the batch rather than leave a gap the last record's report hides."""
    topic = _topic(stack_settings, {"max.message.bytes": str(100 * 1024)})  # the client's limit stays at 1 MB
    sender = Sender(stack_settings.kafka_client_config())

    async def batch():
        ticket = sender.ticket()
        sender.produce(ticket, topic, b"big", os.urandom(200 * 1024), partition=1)  # lz4 cannot shrink it
        sender.produce(ticket, topic, b"after", b"1", partition=1)  # queues the big one, without a report
        await asyncio.sleep(2)  # the big one is refused in a request of its own
        sender.produce(ticket, topic, b"after", b"2", partition=1)
        await sender.wait(ticket)

    failed = _raised(sender, batch, ProducerFailed)
    assert "stopped for good" in str(failed)
    assert [key for key, _ in _read_all(stack_settings, topic, 1)] == []


def test_a_refusal_fails_the_batch_whose_last_record_was_sent_behind_it(stack_settings):
    """The refused record and the partition's last one handed on together, in two requests: the broker may write
    the later one behind the refused one and acknowledge it, or librdkafka may keep it to retry on a producer that
    sends nothing more. Either way only the sender failing the batch once the producer stopped keeps it from
    reading as complete."""
    topic = _topic(stack_settings, {"max.message.bytes": str(100 * 1024)})
    # batches of at most 64 KiB: the big record in a request of its own, the last one in the next
    sender = Sender({**stack_settings.kafka_client_config(), "batch.size": 64 * 1024})

    async def batch():
        ticket = sender.ticket()
        sender.produce(ticket, topic, b"big", os.urandom(200 * 1024), partition=1)
        sender.produce(ticket, topic, b"after", b"1", partition=1)  # queues the big one, without a report
        await asyncio.wait_for(sender.wait(ticket), 60)  # queues the last one, with its report

    failed = _raised(sender, batch, ProducerFailed)
    assert "stopped for good" in str(failed)
    # the broker may have written the last record behind the refused one: the gap the batch's failure stands for
    assert b"big" not in [key for key, _ in _read_all(stack_settings, topic, 1)]
