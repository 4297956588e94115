"""The repository's own topology.yaml: valid, complete against DOMAIN.md, and as the design names it."""

from __future__ import annotations

from click.testing import CliRunner

from psmesh.topology import load_topology
from psmesh.topology.cli import topology as topology_cli
from psmesh.topology.contract import DOMAIN_TABLES


def test_repository_topology_validates_without_warnings(docs):
    topology = load_topology(docs.repo / "topology.yaml")
    assert topology.warnings == []
    assert topology.counts() == "5 domains, 4 sources, 28 topics, 6 processors, 2 sinks"


def test_repository_topology_captures_exactly_the_domain_tables(docs):
    topology = load_topology(docs.repo / "topology.yaml")
    captured = {s.database: set(s.tables) for s in topology.sources}
    assert captured == {db: set(tables) for db, tables in DOMAIN_TABLES.items()}
    names = {t.name for t in topology.topics}
    for source in topology.sources:
        for table in source.tables:
            assert f"{source.name}.public.{table}" in names


def test_repository_topology_declares_derived_view_and_dead_letter_topics(docs):
    topology = load_topology(docs.repo / "topology.yaml")
    names = {t.name for t in topology.topics}
    assert {
        "derived.project_requests",
        "derived.resource_demand",
        "derived.billing_triggers",
        "derived.project_risk_alerts",
        "dlq.processors",
        "dlq.sinks",
    } <= names
    views = [t for t in topology.topics if t.name.startswith("views.")]
    assert {v.name for v in views} == {
        "views.project_financials",
        "views.resource_week",
        "views.skill_week",
        "views.pipeline",
        "views.bookings",
        "views.project_risks",
    }
    assert all(v.cleanup_policy == "compact" for v in views)


def test_view_tables_match_the_reporting_store(docs):
    topology = load_topology(docs.repo / "topology.yaml")
    views = {table for p in topology.processors for table in p.tables}
    reporting = next(s for s in topology.sinks if s.target.database == "reporting")
    assert set(reporting.target.tables) == views
    assert {f"views.{v}" for v in views} == {i for i in reporting.inputs if i.startswith("views.")}


def test_defaults_and_subject_names_are_filled_in(docs):
    topology = load_topology(docs.repo / "topology.yaml")
    accounts = topology.topic("crm.public.accounts")
    assert (accounts.partitions, accounts.replication_factor) == (6, 3)
    assert (accounts.key_subject, accounts.value_subject) == ("crm.public.accounts-key", "crm.public.accounts-value")
    assert topology.topic("dlq.processors").topic_config() == {"cleanup.policy": "delete", "retention.ms": "-1"}


def test_local_cluster_overrides_the_replication_factor(docs):
    topology = load_topology(docs.repo / "topology.yaml")
    topic = topology.topic("views.pipeline")
    assert topology.replication_factor(topic) == 3
    assert topology.replication_factor(topic, "local") == 1


def test_faust_internal_and_underscore_topics_are_unmanaged(docs):
    topology = load_topology(docs.repo / "topology.yaml")
    assert topology.is_unmanaged("_schemas")
    assert topology.is_unmanaged("__consumer_offsets")
    assert topology.is_unmanaged("capacity-resource_week-changelog")
    assert not topology.is_unmanaged("views.pipeline")


def test_cli_validate_of_the_repository_file(docs, monkeypatch):
    monkeypatch.chdir(docs.repo)
    result = CliRunner().invoke(topology_cli, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.output == "ok: 5 domains, 4 sources, 28 topics, 6 processors, 2 sinks\n"


def test_cli_uses_the_repository_file_when_the_cwd_has_none_and_says_so(tmp_path, monkeypatch, docs):
    """An apply from the wrong directory must not push the demo's topology to a cluster unannounced."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(topology_cli, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 5 domains")
    assert result.stderr == (f"no topology.yaml here: using the repository's, {docs.repo / 'topology.yaml'} "
                             "(--file to choose)\n")


def test_the_processors_inputs_are_the_topics_the_worker_reads(docs):
    """The lineage `psmesh topology graph` draws (and the consumers an ACL would grant) is what the worker does:
    every change topic it reads is some processor's input, and no processor declares one it does not read."""
    from processors.records import SOURCE_TOPICS

    topology = load_topology(docs.repo / "topology.yaml")
    assert {topic for p in topology.processors for topic in p.inputs} == set(SOURCE_TOPICS)


def test_the_processors_outputs_and_dead_letter_are_the_topics_the_worker_writes(docs):
    """The worker's outputs are fixed by its code: the topology says so, so that status, dlq and the graph look
    where it writes."""
    from processors.app import VIEW_KEYS

    topology = load_topology(docs.repo / "topology.yaml")
    written = {"derived.project_requests", "derived.resource_demand", "derived.billing_triggers",
               "derived.project_risk_alerts", *(f"views.{v}" for v in VIEW_KEYS)}
    assert {topic for p in topology.processors for topic in p.outputs} == written
    assert {p.dead_letter for p in topology.processors} == {"dlq.processors"}
