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
