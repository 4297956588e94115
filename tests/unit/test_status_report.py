from psmesh.status import Check, Report, _quantile, render


def test_healthy_means_nothing_fails_and_strict_also_refuses_warnings():
    checks = [Check("server", "kafka", "ok", "1 broker(s)"), Check("dead letters", "dlq.sinks", "warn", "3 dead letter(s)")]
    assert Report("now", checks).healthy
    assert not Report("now", checks, strict=True).healthy
    assert not Report("now", [*checks, Check("capture", "crm", "fail", "slot psmesh_crm inactive")]).healthy


def test_render_groups_parts_by_area_and_lists_lag_per_topic():
    lag = {"crm.public.accounts": 0, "crm.public.opportunities": 12, "timeexp.public.time_entries": 3400, "x": 1}
    report = Report("2026-11-26T02:00:00+00:00", [
        Check("capture", "crm", "fail", "slot psmesh_crm inactive: no capture attached (slot lag 1.0 KiB)"),
        Check("consumer group", "psmesh-processors", "ok", "stable, 1 member(s), lag 3,413 records over 4 topics",
              {"lag_by_topic": lag}),
    ])
    text = render(report)
    assert text.splitlines()[0] == "psmesh status at 2026-11-26T02:00:00+00:00: UNHEALTHY (1 failing, 0 warning)"
    assert "captures: replication slots\n  FAIL  crm " in text
    assert "crm.public.opportunities 12 · timeexp.public.time_entries 3,400" in text
    assert "\n          x 1" in text  # the fourth topic wraps onto its own line


def test_quantile_is_the_upper_bound_of_the_bucket_holding_it_summed_over_label_sets():
    inf = float("inf")
    samples = {"h_bucket": [({"le": "0.5", "table": "a"}, 50), ({"le": "1.0", "table": "a"}, 90), ({"le": "+Inf", "table": "a"}, 100),
                            ({"le": "0.5", "table": "b"}, 0), ({"le": "1.0", "table": "b"}, 0), ({"le": "+Inf", "table": "b"}, 100)]}
    assert _quantile(samples, "h", 0.25) == 0.5   # 50 of 200 observations at or below 0.5
    assert _quantile(samples, "h", 0.4) == 1.0    # 80 of 200: the 90 at or below 1.0 hold it
    assert _quantile(samples, "h", 0.5) == inf    # 100 of 200: beyond every finite bucket
    assert _quantile({}, "h", 0.5) is None


def test_a_kafka_error_mid_report_fails_that_part_and_the_report_goes_on(monkeypatch):
    """A partition without a leader, a request that timed out: the group's or topic's line fails, nothing raises."""
    from types import SimpleNamespace

    from confluent_kafka import KafkaError, KafkaException

    import psmesh.dlq
    from psmesh import status
    from psmesh.config import Settings

    def timing_out(*args, **kwargs):
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out"))

    class Future:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    group = SimpleNamespace(state=SimpleNamespace(name="STABLE"), members=[object()])
    partition = SimpleNamespace(topic="views.project_financials", partition=0, offset=5)
    admin = SimpleNamespace(
        describe_consumer_groups=lambda groups, **kw: {g: Future(group) for g in groups},
        list_consumer_group_offsets=lambda requests, **kw: {
            requests[0].group_id: Future(SimpleNamespace(topic_partitions=[partition]))},
        list_topics=lambda **kw: SimpleNamespace(topics={"dlq.sinks": SimpleNamespace(partitions={0: None})}))
    consumer = SimpleNamespace(get_watermark_offsets=timing_out)
    topology = SimpleNamespace(processors=[], sinks=[SimpleNamespace(name="erp_sink")],
                               dead_letter_topics=["dlq.sinks"])
    checks: list = []
    status._groups(Settings(), topology, admin, consumer, status.Thresholds(), checks)
    monkeypatch.setattr(psmesh.dlq, "ack_consumer", lambda settings: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(psmesh.dlq, "spans", timing_out)
    status._dead_letters(Settings(), topology, admin, checks)
    assert [(c.area, c.name, c.state) for c in checks] == [("consumer group", "psmesh-erp_sink", "fail"),
                                                           ("dead letters", "dlq.sinks", "fail")]
    assert "cannot read the end offsets of its topics" in checks[0].detail
    assert "cannot read its offsets" in checks[1].detail


def test_a_table_stopped_by_a_refused_schema_fails_its_capture_naming_table_and_reason(monkeypatch, tmp_path):
    """The capture goes on with its other tables (streams/source.py, ``_hold``) and its slot stays active: status must
    not call it healthy while the table's changes wait in the slot."""
    import json
    from types import SimpleNamespace

    import psycopg

    from psmesh import status
    from psmesh.config import Settings

    class Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, sql, params=None):
            return SimpleNamespace(fetchone=lambda: (True, "0/16B3790", 4096, "reserved"))

    monkeypatch.setattr(psycopg, "connect", lambda *args, **kwargs: Connection())
    (tmp_path / "cdc").mkdir()
    (tmp_path / "cdc" / "crm.status.json").write_text(json.dumps({
        "last_event_at": None, "held": ["public.accounts"],
        "errors": {"public.accounts": "table public.accounts: schema change refused under BACKWARD compatibility"}}))
    topology = SimpleNamespace(sources=[SimpleNamespace(name="crm", slot="psmesh_crm", database="crm", metrics_port=0)])
    monkeypatch.setattr(status, "capture_metrics_port", lambda settings, topology, name: 0)
    checks: list = []
    status._captures(Settings(home=tmp_path), topology, status.Thresholds(), checks)
    assert [(c.name, c.state) for c in checks] == [("crm", "fail")]
    assert checks[0].detail.startswith("capture of public.accounts stopped by a refused schema change, its changes "
                                       "held in slot psmesh_crm (slot lag 4.0 KiB)")
    assert "under BACKWARD compatibility" in checks[0].detail
    assert checks[0].figures["stopped_tables"] == ["public.accounts"]
