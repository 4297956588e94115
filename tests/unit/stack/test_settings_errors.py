"""Settings read from the environment: what a wrong value says, and the PostgreSQL TLS mode."""

from __future__ import annotations

import pytest

from psmesh.config import Settings, load_settings
from psmesh.exceptions import SettingsError


def test_a_wrong_port_names_the_variable_and_what_it_must_be(monkeypatch):
    monkeypatch.setenv("PSMESH_KAFKA_PORT", "abc")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems == ["PSMESH_KAFKA_PORT: must be an integer (got 'abc')"]


@pytest.mark.parametrize("var, value, says", [
    ("PSMESH_KAFKA_PORT", "70000", "must be a port, 1 to 65535 (got 70000)"),
    ("PSMESH_PG_PORT", "0", "must be a port, 1 to 65535 (got 0)"),
    ("PSMESH_ERP_SINK_METRICS_PORT", "70000", "must be 0 (none) or a port, 1 to 65535 (got 70000)"),
    ("PSMESH_PROCESSORS_PORT", "-1", "must be a port, 1 to 65535 (got -1)"),
])
def test_a_port_out_of_range_names_the_variable_before_anything_binds(monkeypatch, var, value, says):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert f"{var}: {says}" in str(caught.value)


def test_a_metrics_port_past_65535_is_a_clear_error_not_an_overflow():
    import click

    from psmesh.metrics_http import serve_metrics

    with pytest.raises(click.ClickException, match="cdc-psa: cannot serve metrics on port 65536: a port is 1 to"):
        serve_metrics(65536, "cdc-psa")  # PSMESH_CDC_METRICS_PORT_BASE=65535, the second source


def test_the_security_protocol_is_checked_in_any_case_as_librdkafka_does(monkeypatch):
    monkeypatch.setenv("PSMESH_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    assert load_settings().kafka_client_config()["security.protocol"] == "sasl_ssl"
    monkeypatch.setenv("PSMESH_KAFKA_SECURITY_PROTOCOL", "bogus")
    with pytest.raises(SettingsError, match="PSMESH_KAFKA_SECURITY_PROTOCOL: must be one of PLAINTEXT"):
        load_settings()


def test_a_registry_url_without_a_scheme_is_refused(monkeypatch):
    monkeypatch.setenv("PSMESH_REGISTRY_URL", "localhost:8081")
    with pytest.raises(SettingsError, match="PSMESH_REGISTRY_URL: must be an http:// or https:// URL"):
        load_settings()


@pytest.mark.parametrize("url, says", [
    ("worker-2:6066", "must be http://host:port or https://host:port"),
    ("http://worker-2", "must be http://host:port or https://host:port"),
    ("http://worker-2:6066/views", "must be http://host:port or https://host:port"),
    ("http://0.0.0.0:6066", "0.0.0.0 is where a server listens, not an address another worker can reach"),
])
def test_a_worker_url_the_others_cannot_reach_it_at_is_refused(monkeypatch, url, says):
    monkeypatch.setenv("PSMESH_PROCESSORS_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    [problem] = caught.value.problems
    assert problem.startswith(f"PSMESH_PROCESSORS_URL: {says}") and problem.endswith(f"(got {url!r})")
    monkeypatch.setenv("PSMESH_PROCESSORS_URL", "http://worker-2.internal:6066/")
    assert load_settings().processors_url == "http://worker-2.internal:6066/"


def test_processors_run_refuses_a_url_before_it_starts_anything():
    from click.testing import CliRunner

    from psmesh.cli import main

    result = CliRunner().invoke(main, ["processors", "run", "--url", "http://worker-2"])
    assert result.exit_code == 2
    assert "Invalid value for '--url': must be http://host:port" in result.output


@pytest.mark.parametrize("password", ["abc topsecret", "a\\b", "'quoted'", "x host=elsewhere", "p@ss=w:rd"])
def test_a_pg_password_with_spaces_quotes_or_backslashes_stays_one_value(monkeypatch, password):
    from psycopg.conninfo import conninfo_to_dict

    monkeypatch.setenv("PSMESH_PG_PASSWORD", password)
    monkeypatch.setenv("PSMESH_PG_USER", "ops team")
    params = conninfo_to_dict(Settings().pg_dsn("crm"))
    assert (params["password"], params["user"], params["dbname"]) == (password, "ops team", "crm")
    assert params["host"] != "elsewhere"


def test_pg_sslmode_applies_without_an_external_host(monkeypatch):
    monkeypatch.delenv("PSMESH_PG_HOST", raising=False)
    monkeypatch.delenv("PSMESH_PG_SSLMODE", raising=False)
    assert "sslmode" not in Settings().pg_dsn("crm")  # the local cluster: libpq's own default
    monkeypatch.setenv("PSMESH_PG_SSLMODE", "require")
    assert Settings().pg_dsn("crm").endswith(" sslmode=require")


def test_an_external_host_keeps_prefer_when_no_sslmode_is_set(monkeypatch):
    monkeypatch.delenv("PSMESH_PG_SSLMODE", raising=False)
    monkeypatch.setenv("PSMESH_PG_HOST", "db.example")
    assert Settings().pg_dsn("crm").endswith(" sslmode=prefer")


def test_the_reconciliation_servers_take_the_same_sslmode(monkeypatch):
    from psmesh.reconcile import _server_options

    monkeypatch.delenv("PSMESH_PG_HOST", raising=False)
    monkeypatch.delenv("PSMESH_PG_SSLMODE", raising=False)
    assert "sslmode" not in _server_options(Settings(), "crm", "5432")
    monkeypatch.setenv("PSMESH_PG_SSLMODE", "require")
    assert _server_options(Settings(), "crm", "5432")["sslmode"] == "require"


def test_the_reconciliation_server_reaches_the_sources_on_its_own_port(monkeypatch):
    # docker-compose.yml maps the host's 5433 to the container's 5432: the server must dial 5432, its own.
    from psmesh.reconcile import _server_options

    monkeypatch.delenv("PSMESH_PG_HOST", raising=False)
    options = _server_options(Settings(pg_port=5433), "crm", "5432")
    assert (options["host"], options["port"], options["dbname"]) == ("127.0.0.1", "5432", "crm")
    # an external server is reached by the name and port psmesh reaches it on
    monkeypatch.setenv("PSMESH_PG_HOST", "db.example")
    options = _server_options(Settings(pg_port=6432), "crm", "5432")
    assert (options["host"], options["port"]) == ("db.example", "6432")


def test_a_sink_s_dead_letter_topic_is_the_topology_s():
    from types import SimpleNamespace

    from psmesh.ports import sink_dead_letter_topic

    topology = SimpleNamespace(sinks=[SimpleNamespace(name="erp_sink", dead_letter="dlq.erp"),
                                      SimpleNamespace(name="reporting_sink", dead_letter=None)])
    assert sink_dead_letter_topic(topology, "erp") == "dlq.erp"
    assert sink_dead_letter_topic(topology, "reporting") == "dlq.sinks"
    assert sink_dead_letter_topic(None, "erp") == "dlq.sinks"


def test_a_missing_ca_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PSMESH_KAFKA_SSL_CA_LOCATION", str(tmp_path / "ca.pem"))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems == [f"PSMESH_KAFKA_SSL_CA_LOCATION: {tmp_path / 'ca.pem'} does not exist"]
    monkeypatch.setenv("PSMESH_KAFKA_SSL_CA_LOCATION", "probe")  # librdkafka looks in the system's paths
    assert load_settings().kafka_client_config()["ssl.ca.location"] == "probe"
