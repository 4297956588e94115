"""A capture's producer, closed before the next capture starts, keeps nothing queued that could land later."""

from __future__ import annotations

from streams.publisher import ChangePublisher, producer_config


def test_close_drops_what_the_broker_did_not_acknowledge_and_reports_it():
    # No broker listens there: nothing can be delivered, as when Kafka is unreachable while PostgreSQL reconnects.
    publisher = ChangePublisher(producer_config({"bootstrap.servers": "127.0.0.1:1"}, "psmesh-test-close"))
    reports = []
    for n in range(3):
        publisher.send("crm.public.accounts", f"k{n}".encode(), b"v", lambda err, msg: reports.append(err))
    assert len(publisher) >= 3  # the events, and the delivery reports and requests librdkafka counts with them

    assert publisher.close(timeout=0.2) >= 3
    # Nothing is left to be retried beside the next capture's producer, and each dropped event was reported as
    # not delivered (the capture never confirms its transaction: the slot sends it again).
    assert len(publisher) == 0
    assert len(reports) == 3 and all(err is not None for err in reports)


def test_close_after_everything_was_delivered_drops_nothing():
    publisher = ChangePublisher(producer_config({"bootstrap.servers": "127.0.0.1:1"}, "psmesh-test-close"))
    assert publisher.close(timeout=0.1) == 0


def test_the_capture_s_producer_stays_idempotent_whatever_the_connection_settings_say():
    # streams/position.py: positions grow along a partition only if a retried request cannot land behind a later one
    config = producer_config({"bootstrap.servers": "127.0.0.1:1", "enable.idempotence": False, "acks": "1",
                              "max.in.flight.requests.per.connection": 100}, "psmesh-test")
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert config["max.in.flight.requests.per.connection"] <= 5
