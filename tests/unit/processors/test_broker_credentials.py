"""The worker's Faust (aiokafka) clients take the Kafka security settings its librdkafka clients take."""

from __future__ import annotations

import ssl

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from processors.app import Processors, broker_credentials
from processors.exceptions import ProcessorError
from psmesh.config import Settings


def _auth(settings: Settings) -> dict:
    return dict(credentials_to_aiokafka_auth(broker_credentials(settings)))


def test_plaintext_gives_faust_no_credentials(tmp_path):
    assert broker_credentials(Settings(home=tmp_path)) is None
    assert _auth(Settings(home=tmp_path)) == {"security_protocol": "PLAINTEXT"}


def test_sasl_over_tls_reaches_the_workers_faust_app(tmp_path):
    settings = Settings(home=tmp_path, kafka_bootstrap="broker.example:9093", kafka_security_protocol="SASL_SSL",
                        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="psmesh",
                        kafka_sasl_password="s3cret")
    auth = _auth(settings)
    assert (auth["security_protocol"], auth["sasl_mechanism"], auth["sasl_plain_username"],
            auth["sasl_plain_password"]) == ("SASL_SSL", "SCRAM-SHA-512", "psmesh", "s3cret")
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    # what the worker's app is built with, not only the helper
    worker = Processors(settings, web_port=6998, datadir=tmp_path / "data")
    assert dict(credentials_to_aiokafka_auth(worker.app.conf.broker_credentials)) | {"ssl_context": None} == \
        auth | {"ssl_context": None}


def test_tls_and_sasl_without_tls_are_told_apart(tmp_path):
    assert _auth(Settings(home=tmp_path, kafka_security_protocol="SSL"))["security_protocol"] == "SSL"
    auth = _auth(Settings(home=tmp_path, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u",
                          kafka_sasl_password="p"))
    assert (auth["security_protocol"], auth["sasl_mechanism"], auth["ssl_context"]) == ("SASL_PLAINTEXT", "PLAIN", None)


def test_an_unknown_protocol_is_refused_with_the_setting_named(tmp_path):
    with pytest.raises(ProcessorError, match="PSMESH_KAFKA_SECURITY_PROTOCOL='bogus'"):
        broker_credentials(Settings(home=tmp_path, kafka_security_protocol="bogus"))
