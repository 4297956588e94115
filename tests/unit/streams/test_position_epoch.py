"""The origin of a capture's positions moves on to a new epoch when positions it published may come again for other
changes (streams/position.py): the server's WAL went back (a restore from a physical backup or a disk snapshot,
which keep the system identifier and may keep the timeline), or Kafka refused an event and its partition may have
taken later ones without it. Consumers then compare nothing across the epochs, so neither is taken for repeats."""

from __future__ import annotations

from confluent_kafka import KafkaError

from streams import position
from streams.lsn import Lsn
from streams.source import CaptureConfig, CaptureSource
from streams.state import CaptureState
from tests.unit.streams.stand_ins import MemoryRegistrar, SilentPublisher


class _Stream:
    """What _set_origin reads of a replication connection (IDENTIFY_SYSTEM); what _send_status sends."""

    def __init__(self, wal_end: int) -> None:
        self.system_identifier, self.timeline, self.wal_end = "7441862374219938371", 3, wal_end
        self.sent: list[tuple[int, int]] = []

    def send_status(self, written: int, flushed: int) -> None:
        self.sent.append((written, flushed))


class _Error:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code


class _Message:
    def topic(self) -> str:
        return "crm.public.accounts"

    def partition(self) -> int:
        return 2


def _capture(tmp_path) -> CaptureSource:
    config = CaptureConfig(name="crm", dsn="", database="crm", tables=("public.accounts",), slot="s", publication="p",
                           registry_url="http://unused", kafka={}, state_dir=tmp_path)
    return CaptureSource(config, registrar=MemoryRegistrar(), publisher=SilentPublisher())


def _saved(tmp_path) -> CaptureState:
    return CaptureState.load(tmp_path / "crm.state.json", ["public.accounts"])


def test_the_origin_is_the_servers_and_the_epoch_stays_while_the_wal_is_past_what_was_confirmed(tmp_path):
    capture = _capture(tmp_path)
    capture.state.confirmed_lsn = Lsn(0x9000)
    capture._set_origin(_Stream(wal_end=0x9000))
    assert capture._origin == position.origin("7441862374219938371", 3, 0) == b"7441862374219938371.3.0"


def test_a_server_whose_wal_ends_before_what_kafka_acknowledged_starts_a_new_epoch(tmp_path):
    capture = _capture(tmp_path)
    capture.state.confirmed_lsn = Lsn(0x2000)  # a held table kept the slot back; the others were published on
    capture.state.acknowledged_lsn = Lsn(0x9000)
    capture._set_origin(_Stream(wal_end=0x5000))  # restored from a disk snapshot taken earlier
    assert capture._origin == b"7441862374219938371.3.1"
    saved = _saved(tmp_path)
    assert saved.epoch == 1 and saved.confirmed_lsn == saved.acknowledged_lsn == 0  # before any event of the epoch


def test_a_slot_that_stands_before_what_was_confirmed_starts_a_new_epoch(tmp_path):
    # a restore whose server has written past what the capture published before the capture came back
    capture = _capture(tmp_path)
    capture.state.confirmed_lsn = capture.state.acknowledged_lsn = Lsn(0x9000)
    capture._slot_confirmed = 0x5000
    capture._set_origin(_Stream(wal_end=0xA000))
    assert capture._origin.endswith(b".1")


def test_the_confirmed_position_is_kept_in_the_state_file_as_it_moves(tmp_path):
    capture = _capture(tmp_path)
    stream = _Stream(wal_end=0)
    capture.tracker.idle(0x7000)  # nothing in flight: the slot can be confirmed up to the server's position
    capture._send_status(stream, force=True)
    assert stream.sent[-1][1] == 0x7000
    assert _saved(tmp_path).confirmed_lsn == _saved(tmp_path).acknowledged_lsn == 0x7000
    capture.tracker.hold(None)  # a table held: the slot stays, what Kafka acknowledged goes on
    capture.tracker.idle(0x8000)
    capture._send_status(stream)
    assert _saved(tmp_path).confirmed_lsn == 0x7000 and _saved(tmp_path).acknowledged_lsn == 0x8000


def _acking(tmp_path):
    """A capture, and the delivery report of an event of a transaction it publishes."""
    capture = _capture(tmp_path)
    return capture, capture._acker(capture.tracker.begin(), None)


def test_a_delivery_kafka_refused_starts_a_new_epoch_for_the_next_run_once(tmp_path):
    capture, ack = _acking(tmp_path)
    ack(_Error(KafkaError._MSG_TIMED_OUT), _Message())
    ack(_Error(KafkaError.NOT_ENOUGH_REPLICAS), _Message())
    assert _saved(tmp_path).epoch == 1  # saved at once: the run stops on it, and may be killed before it closes
    capture._set_origin(_Stream(wal_end=0x9000))
    assert capture._origin.endswith(b".1")


def test_a_purged_event_keeps_the_epoch(tmp_path):
    # close() purges what Kafka did not take in time: nothing after it was sent, so no partition has a gap
    capture, ack = _acking(tmp_path)
    ack(_Error(KafkaError._PURGE_QUEUE), _Message())
    ack(_Error(KafkaError._PURGE_INFLIGHT), _Message())
    assert capture.state.epoch == 0 and not (tmp_path / "crm.state.json").exists()
