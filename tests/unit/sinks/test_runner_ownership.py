"""A sink writes only the partitions it owns at the moment it writes, retries included.

The runner's loop against a consumer stand-in: what is tested is which records a write attempt is handed, not the
broker or the database (tests/integration/test_pipeline.py runs the sinks on both).
"""

from __future__ import annotations

from collections import Counter

from confluent_kafka import TopicPartition

from sinks.base import Action, Write
from sinks.exceptions import TargetUnavailable
from sinks.records import SinkRecord
from sinks.runner import RunnerConfig, SinkRunner

TOPIC = "views.pipeline"


class _Message:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def error(self) -> None:
        return None

    def headers(self) -> None:
        return None


class _RebalancingConsumer:
    """Gives one message per partition; the first poll of a retry's wait revokes partition 0, as a rebalance that
    hands it to another instance does."""

    def __init__(self, runner: SinkRunner) -> None:
        self.runner, self.polls, self.commits = runner, 0, []

    def consume(self, num_messages: int, timeout: float) -> list[_Message]:
        return [_Message(0, 100), _Message(1, 7)]

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.runner._assigned]

    def pause(self, partitions) -> None:
        pass

    def resume(self, partitions) -> None:
        pass

    def poll(self, timeout: float) -> None:
        self.polls += 1
        if self.polls == 1:
            self.runner._on_revoke(self, [TopicPartition(TOPIC, 0)])
        return None

    def commit(self, offsets, asynchronous: bool) -> None:
        self.commits.append([(o.topic, o.partition, o.offset) for o in offsets])


class _Sink:
    name = "reporting_sink"

    def contracts(self) -> dict:
        return {}

    def after_batch(self, engine, changed: bool) -> None:
        pass


class _NoDeadLetters:
    def publish(self, dead) -> None:
        assert not dead

    def close(self) -> None:
        pass


def test_a_partition_revoked_during_a_retry_is_not_written():
    runner = SinkRunner(_Sink(), RunnerConfig(kafka={"bootstrap.servers": "127.0.0.1:1"}, registry_url="http://127.0.0.1:1",
                                              dsn="postgresql://127.0.0.1:1/none", group_id="g", backoff_initial=0.01))
    runner._dlq.close()
    runner._dlq = _NoDeadLetters()
    runner._consumer = consumer = _RebalancingConsumer(runner)
    runner._assigned = {(TOPIC, 0), (TOPIC, 1)}

    def prepare(messages):
        writes = [Write(SinkRecord(TOPIC, m.partition(), m.offset(), b"k", b"v", {"k": m.partition()}, {"v": 1}),
                        "pipeline", Action.UPSERT, (m.partition(),), {"v": 1}) for m in messages]
        return writes, []

    attempts: list[list[int]] = []

    def write(writes):
        attempts.append(sorted(w.record.partition for w in writes))
        if len(attempts) == 1:
            raise TargetUnavailable("the database went away")
        return Counter(pipeline=len(writes)), []

    runner._prepare = prepare
    runner._write = write
    runner._observe_latency = lambda *args: None
    runner._report_lag = lambda: None

    runner.step()

    # The first attempt owned both; after the wait, partition 0 belongs to another instance, which writes its
    # records from the committed offset (possibly newer ones too): writing them here as well could put an older
    # row over a newer one. Only partition 1 is written and committed.
    assert attempts == [[0, 1], [1]]
    assert consumer.commits == [[(TOPIC, 1, 8)]]


def test_a_stop_while_the_target_is_still_unreachable_at_start_ends_run_quietly():
    """SIGTERM during the start's retries: run() returns, no traceback of the runner's internal stop signal."""
    import threading

    from sinks.exceptions import TargetUnavailable as Unavailable

    class _Unreachable(_Sink):
        def setup(self, engine) -> None:
            tried.set()
            raise Unavailable("database unreachable")

    tried = threading.Event()
    runner = SinkRunner(_Unreachable(), RunnerConfig(kafka={"bootstrap.servers": "127.0.0.1:1"},
                                                     registry_url="http://127.0.0.1:1",
                                                     dsn="postgresql://127.0.0.1:1/none", group_id="g",
                                                     backoff_initial=0.05))
    runner._setup = lambda: runner.sink.setup(runner.engine)
    threading.Timer(0.3, runner.stop).start()
    runner.run()  # returns once stopped; before, it raised _Stopped out of start()
    assert tried.is_set() and runner._consumer is None
