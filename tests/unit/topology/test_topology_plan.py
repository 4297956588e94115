"""plan_changes: the diff between a topology and an observed cluster, without a server."""

from __future__ import annotations

import json

import pytest

from psmesh.topology.plan import (
    AddPartitions,
    AlterTopicConfig,
    ClusterState,
    CreateTopic,
    LiveSubject,
    LiveTopic,
    RegisterSchema,
    plan_changes,
    same_schema,
)

PIPELINE_SCHEMA = {
    "type": "record",
    "name": "Pipeline",
    "namespace": "psmesh.views",
    "fields": [{"name": "service_line", "type": "string"}, {"name": "open_count", "type": "long"}],
}


@pytest.fixture
def topology(doc, docs):
    loaded, issues, _ = docs.check(doc)
    assert loaded is not None, issues
    return loaded


def _live(topology, cluster=None, brokers=1) -> dict[str, LiveTopic]:
    """The cluster exactly as the topology wants it."""
    return {
        t.name: LiveTopic(
            t.name, t.partitions, min(topology.replication_factor(t, cluster), brokers), dict(t.topic_config())
        )
        for t in topology.topics
    }


def test_empty_cluster_gets_every_topic_created_with_its_config(topology):
    plan = plan_changes(topology, ClusterState(brokers=3, topics={}))
    assert all(isinstance(a, CreateTopic) for a in plan.actions)
    by_name = {a.topic: a for a in plan.actions}
    assert set(by_name) == {t.name for t in topology.topics}
    assert by_name["views.pipeline"] == CreateTopic("views.pipeline", 6, 3, {"cleanup.policy": "compact"})
    assert by_name["dlq.processors"].config == {"cleanup.policy": "delete", "retention.ms": "-1"}
    assert plan.warnings == ()


def test_replication_factor_is_capped_to_live_brokers_with_one_warning(topology):
    plan = plan_changes(topology, ClusterState(brokers=1, topics={}))
    assert {a.replication_factor for a in plan.actions} == {1}
    (warning,) = plan.warnings
    assert "1 broker(s): replication factor capped to 1 for 4 new topic(s) (topology asks for up to 3)" in warning


def test_cluster_override_sets_the_replication_factor_without_a_cap_warning(topology):
    plan = plan_changes(topology, ClusterState(brokers=1, topics={}), cluster="local")
    assert {a.replication_factor for a in plan.actions} == {1}
    assert plan.warnings == ()


def test_cluster_that_matches_has_nothing_to_do(topology):
    plan = plan_changes(topology, ClusterState(brokers=1, topics=_live(topology, "local")), cluster="local")
    assert plan.empty
    assert plan.warnings == ()
    assert plan.lines() == ["nothing to do"]


def test_more_partitions_for_a_compacted_topic_is_a_warning_unless_asked_for(topology):
    live = _live(topology)
    live["views.pipeline"] = LiveTopic("views.pipeline", 4, 1, {"cleanup.policy": "compact"})
    plan = plan_changes(topology, ClusterState(1, live))
    assert plan.actions == ()
    (warning,) = plan.warnings
    assert "topic views.pipeline has 4 partitions, the topology asks for 6: it is compacted" in warning
    plan = plan_changes(topology, ClusterState(1, live), repartition_compacted=True)
    assert plan.actions == (AddPartitions("views.pipeline", 4, 6),)
    assert plan.lines()[0] == "~ add partitions to views.pipeline: 4 -> 6"


def test_more_partitions_for_a_topic_of_events_are_added_with_a_warning_on_order(doc, docs):
    next(t for t in doc["topics"] if t["name"] == "dlq.processors")["partitions"] = 3
    topology, issues, _ = docs.check(doc)
    assert topology is not None, issues
    live = _live(topology)
    live["dlq.processors"] = LiveTopic("dlq.processors", 1, 1, live["dlq.processors"].config)
    plan = plan_changes(topology, ClusterState(1, live))
    assert plan.actions == (AddPartitions("dlq.processors", 1, 3),)
    assert any("a consumer may read them out of order around the change" in w for w in plan.warnings)


def test_fewer_partitions_in_the_file_is_a_warning_never_an_action(topology):
    live = _live(topology)
    live["views.pipeline"] = LiveTopic("views.pipeline", 12, 1, {"cleanup.policy": "compact"})
    plan = plan_changes(topology, ClusterState(1, live))
    assert plan.empty
    (warning,) = plan.warnings
    assert "views.pipeline has 12 partitions, the topology asks for 6: Kafka cannot remove partitions" in warning


def test_changed_cleanup_policy_and_retention_are_altered(topology):
    live = _live(topology)
    live["views.pipeline"] = LiveTopic("views.pipeline", 6, 1, {"cleanup.policy": "delete"})
    live["dlq.processors"] = LiveTopic("dlq.processors", 1, 1, {"cleanup.policy": "delete", "retention.ms": "604800000"})
    plan = plan_changes(topology, ClusterState(1, live))
    assert set(plan.actions) == {
        AlterTopicConfig("views.pipeline", (("cleanup.policy", "delete", "compact"),)),
        AlterTopicConfig("dlq.processors", (("retention.ms", "604800000", "-1"),)),
    }


def test_cleanup_policy_order_does_not_matter(doc, docs):
    next(t for t in doc["topics"] if t["name"] == "views.pipeline")["cleanup_policy"] = "compact,delete"
    topology, _, _ = docs.check(doc)
    live = _live(topology)
    live["views.pipeline"] = LiveTopic("views.pipeline", 6, 1, {"cleanup.policy": "delete,compact"})
    assert plan_changes(topology, ClusterState(1, live)).empty


def test_unset_retention_is_not_managed(topology):
    live = _live(topology)
    live["views.pipeline"] = LiveTopic("views.pipeline", 6, 1, {"cleanup.policy": "compact", "retention.ms": "1000"})
    assert plan_changes(topology, ClusterState(1, live)).empty


def test_replication_factor_difference_is_a_warning_never_an_action(topology):
    live = _live(topology, brokers=3)
    live["views.pipeline"] = LiveTopic("views.pipeline", 6, 1, {"cleanup.policy": "compact"})
    plan = plan_changes(topology, ClusterState(3, live))
    assert plan.empty
    (warning,) = plan.warnings
    assert "views.pipeline has replication factor 1, the topology asks for 3" in warning
    assert "partition reassignment" in warning


def test_topics_not_in_the_file_are_warned_about_and_never_deleted(topology):
    live = _live(topology)
    live["legacy.orders"] = LiveTopic("legacy.orders", 1, 1, {})
    live["_schemas"] = LiveTopic("_schemas", 1, 1, {})
    plan = plan_changes(topology, ClusterState(1, live))
    assert plan.empty
    assert plan.warnings == (
        "topic legacy.orders is in the cluster but not in the topology: apply never deletes topics",
    )


@pytest.fixture
def with_schema(doc, docs, tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "pipeline.avsc").write_text(json.dumps(PIPELINE_SCHEMA, indent=2))
    next(t for t in doc["topics"] if t["name"] == "views.pipeline")["value_schema"] = "schemas/pipeline.avsc"
    topology, issues, _ = docs.check(doc, base_dir=tmp_path)
    assert topology is not None, issues
    return topology


def test_missing_subject_is_registered(with_schema):
    plan = plan_changes(with_schema, ClusterState(1, _live(with_schema), subjects={}))
    (action,) = plan.actions
    assert isinstance(action, RegisterSchema)
    assert (action.subject, action.path, action.reason) == ("views.pipeline-value", "schemas/pipeline.avsc", "new subject")
    assert json.loads(action.schema_str) == PIPELINE_SCHEMA


def test_subject_whose_latest_is_the_file_has_nothing_to_do(with_schema):
    compact = json.dumps(PIPELINE_SCHEMA, separators=(",", ":"))
    subjects = {"views.pipeline-value": LiveSubject("views.pipeline-value", 2, compact)}
    assert plan_changes(with_schema, ClusterState(1, _live(with_schema), subjects)).empty


def test_subject_whose_latest_differs_gets_the_file_registered(with_schema):
    old = dict(PIPELINE_SCHEMA, fields=PIPELINE_SCHEMA["fields"][:1])
    subjects = {"views.pipeline-value": LiveSubject("views.pipeline-value", 1, json.dumps(old))}
    (action,) = plan_changes(with_schema, ClusterState(1, _live(with_schema), subjects)).actions
    assert isinstance(action, RegisterSchema)
    assert action.reason == "differs from latest version 1"


def test_registry_lookup_equal_to_latest_counts_as_up_to_date(with_schema):
    # the registry's own canonical comparison says the file *is* the latest version
    subjects = {"views.pipeline-value": LiveSubject("views.pipeline-value", 3, '{"type":"x"}', declared_version=3)}
    assert plan_changes(with_schema, ClusterState(1, _live(with_schema), subjects)).empty


def test_file_matching_an_older_version_is_a_warning(with_schema):
    subjects = {"views.pipeline-value": LiveSubject("views.pipeline-value", 3, '{"type":"x"}', declared_version=1)}
    plan = plan_changes(with_schema, ClusterState(1, _live(with_schema), subjects))
    assert plan.empty
    (warning,) = plan.warnings
    assert "is version 1 but the latest is version 3" in warning


def test_unreadable_registry_is_a_warning_and_topics_are_still_planned(with_schema):
    plan = plan_changes(with_schema, ClusterState(1, {}, subjects=None, registry_problem="ConnectError: refused"))
    assert len(plan.actions) == len(with_schema.topics)
    assert any("schema registry not read (ConnectError: refused): 1 schema subject(s) not checked" in w for w in plan.warnings)


def test_same_schema_ignores_formatting_and_primitive_type_wrapping():
    a = json.dumps({"type": "record", "name": "R", "fields": [{"name": "x", "type": {"type": "string"}}]})
    b = '{"fields":[{"type":"string","name":"x"}],"name":"R","type":"record"}'
    assert same_schema(a, b)
    assert not same_schema(a, b.replace("string", "long"))
