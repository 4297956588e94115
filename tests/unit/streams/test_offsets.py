import pytest

from streams.offsets import DeliveryFailed, FlushTracker


def test_lsn_is_flushable_only_after_every_event_of_the_transaction_is_acknowledged():
    tracker = FlushTracker(start_lsn=100)
    txn = tracker.begin()
    tracker.sent(txn)
    tracker.sent(txn)
    tracker.seal(txn, end_lsn=200)
    assert tracker.flushable == 100
    tracker.delivered(txn, None)
    assert tracker.flushable == 100
    tracker.delivered(txn, None)
    assert tracker.flushable == 200


def test_a_later_transaction_acknowledged_first_waits_for_the_earlier_one():
    tracker = FlushTracker()
    first, second = tracker.begin(), tracker.begin()
    tracker.sent(first)
    tracker.seal(first, 10)
    tracker.sent(second)
    tracker.seal(second, 20)
    tracker.delivered(second, None)
    assert tracker.flushable == 0
    tracker.delivered(first, None)
    assert tracker.flushable == 20


def test_an_unsealed_transaction_holds_the_position_even_when_all_its_events_are_acknowledged():
    tracker = FlushTracker()
    txn = tracker.begin()
    tracker.sent(txn)
    tracker.delivered(txn, None)
    assert tracker.flushable == 0
    tracker.idle(500)
    assert tracker.flushable == 0, "an open transaction must pin the position"


def test_a_failed_delivery_stops_every_later_confirmation():
    tracker = FlushTracker()
    txn = tracker.begin()
    tracker.sent(txn)
    tracker.seal(txn, 10)
    tracker.delivered(txn, "KafkaError{code=MSG_TIMED_OUT}")
    with pytest.raises(DeliveryFailed, match="MSG_TIMED_OUT"):
        tracker.flushable


def test_idle_source_advances_to_the_server_position_when_nothing_is_in_flight():
    tracker = FlushTracker(start_lsn=5)
    tracker.idle(80)
    assert tracker.flushable == 80
    tracker.idle(40)
    assert tracker.flushable == 80


def test_a_held_transaction_caps_the_position_while_later_ones_still_settle():
    tracker = FlushTracker(start_lsn=5)
    first, held, later = tracker.begin(), tracker.begin(), tracker.begin()
    for txn, end in ((first, 10), (held, 20), (later, 30)):
        tracker.sent(txn)
        tracker.seal(txn, end)
    tracker.hold(held)
    assert tracker.held
    for txn in (first, held, later):
        tracker.delivered(txn, None)
    assert tracker.flushable == 10, "the held transaction and every one after it stay unconfirmed"
    assert tracker.in_flight == 0, "the transactions after the hold settled: no memory grows with them"
    assert tracker.acknowledged == 30, "what Kafka has, hold or not"
    tracker.idle(500)
    assert tracker.flushable == 10, "an idle source does not move a held position either"


def test_a_hold_with_no_transaction_open_stops_the_position_where_it_stands():
    tracker = FlushTracker(start_lsn=40)
    tracker.hold(None)
    txn = tracker.begin()
    tracker.sent(txn)
    tracker.seal(txn, 90)
    tracker.delivered(txn, None)
    assert tracker.flushable == 40
