"""topology.yaml says what each sink reads, as the sinks read it: the graph and the consumer lists are the data flow."""

from __future__ import annotations

from pathlib import Path

from psmesh.topology.model import load_topology
from sinks.erp import ErpSink
from sinks.reporting import ReportingSink

TOPOLOGY = load_topology(Path(__file__).resolve().parents[3] / "topology.yaml")


def test_each_sinks_inputs_are_the_topics_it_consumes_and_list_it_as_a_consumer():
    sinks = {s.name: s for s in TOPOLOGY.sinks}
    topics = {t.name: t for t in TOPOLOGY.topics}
    for sink in (ErpSink(), ReportingSink()):
        assert set(sinks[sink.name].inputs) == set(sink.contracts()), sink.name
        for topic in sinks[sink.name].inputs:
            assert sink.name in topics[topic].consumers, f"{topic} does not list {sink.name} among its consumers"
