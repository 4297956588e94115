"""A processors worker without Kafka, for unit tests of its batch handling (processors/app.py).

The worker is built as in a run, on Faust's memory store; its sender records
what it would produce instead of producing, and its encoders record what
they would encode. Batches run as the worker runs them, on a delivery ticket.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

from processors.app import _TICKET, Processors
from psmesh.config import Settings


class RecordingSender:
    """Records each produce (and each wait) in order; ``refuse(topic)`` raises instead for the topics it names."""

    def __init__(self, refuse: Callable[[str], Exception | None] = lambda topic: None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.sizes: list[tuple[str, int]] = []
        #: (topic, partition, value) of each record produced
        self.records: list[tuple[str, int | None, bytes | None]] = []
        self.refuse = refuse

    def ticket(self) -> object:
        return object()

    def produce(self, ticket, topic, key, value, **kwargs) -> None:
        error = self.refuse(topic)
        if error is not None:
            raise error
        self.calls.append(("produce", topic))
        self.sizes.append((topic, len(value or b"")))
        self.records.append((topic, kwargs.get("partition"), value))

    def release(self, ticket) -> None:
        pass

    async def wait(self, ticket) -> dict:
        self.calls.append(("wait", ""))
        return {}

    def produced(self) -> list[str]:
        return [topic for call, topic in self.calls if call == "produce"]


class RecordingEncoders:
    """The worker's encoders: every record they are given, per topic, in order; fixed bytes out."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, topic: str) -> Any:
        records = self.records

        class _Encoder:
            def key(self, record):
                return b"k"

            def value(self, record):
                records.append((topic, record))
                return b"v"

        return _Encoder()


class FakeMessage:
    def __init__(self, topic: str, partition: int = 0, offset: int = 0, headers: list | None = None) -> None:
        self.topic, self.partition, self.offset, self.headers = topic, partition, offset, headers
        self.tp = (topic, partition)


class FakeEvent:
    def __init__(self, topic: str, partition: int = 0, offset: int = 0, key: bytes | None = None,
                 value: bytes | None = None, headers: list | None = None) -> None:
        self.message, self.key, self.value = FakeMessage(topic, partition, offset, headers), key, value


def worker(tmp_path: Path, sender: RecordingSender | None = None) -> Processors:
    """A worker on the memory store with a recording sender and recording encoders (``.encoder.records``)."""
    processors = Processors(Settings(home=tmp_path), web_port=6999, datadir=tmp_path / "data", store="memory://")
    processors.sender = sender or RecordingSender()
    processors.encoder = RecordingEncoders()
    return processors


def run_batch(processors: Processors, handle: Callable[..., Any], *args: Any) -> Any:
    """``await handle(*args)`` on a delivery ticket of its own, as the worker runs a batch."""

    async def run():
        token = _TICKET.set(processors.sender.ticket())
        try:
            return await handle(*args)
        finally:
            _TICKET.reset(token)

    return asyncio.run(run())
