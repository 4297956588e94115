"""The sender once librdkafka stopped its producer for good (processors/sender.py, ``_stopped``): every batch waiting
fails, whichever thread read the fatal error. The broker is left out: the producer is a stand-in that raises the
error as confluent-kafka raises it; tests/integration/test_sender.py has the refusals on the real broker."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaError, KafkaException

from processors.sender import ProducerFailed, Sender


class _Stopped:
    """A producer whose flush meets the fatal error, with one record still queued."""

    def flush(self, timeout: float) -> int:
        raise KafkaException(KafkaError(KafkaError._GAPLESS_GUARANTEE, "a batch refused: gap", fatal=True))

    def __len__(self) -> int:
        return 1


def test_a_fatal_error_the_shutdown_flush_reads_fails_the_batch_waiting():
    sender = Sender({"bootstrap.servers": "127.0.0.1:9"})

    async def go():
        ticket = sender.ticket()
        ticket.sent = 1  # one record handed on with a report that has not come
        sender._producer = _Stopped()
        waiting = asyncio.create_task(sender.wait(ticket))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await asyncio.to_thread(sender.close)  # the worker's shutdown, while the batch still waits
        with pytest.raises(ProducerFailed, match="stopped for good"):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(ProducerFailed):  # and any batch waited on after it
            await sender.wait(sender.ticket())

    asyncio.run(go())
