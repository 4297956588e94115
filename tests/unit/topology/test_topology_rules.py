"""Each rule of topology.yaml, broken on purpose: the error names the place, the line and what is wrong."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from psmesh.topology import TopologyError, load_topology
from psmesh.topology.cli import topology as topology_cli
from psmesh.topology.issues import Severity


def _topic(doc: dict, name: str) -> dict:
    return next(t for t in doc["topics"] if t["name"] == name)


def test_minimal_document_is_valid(doc, docs):
    topology, issues, _ = docs.check(doc)
    assert topology is not None, "\n".join(map(str, issues))
    assert issues == []


def test_processor_input_naming_an_unknown_topic_is_located_at_the_input(doc, docs):
    doc["processors"][0]["inputs"][1] = "crm.public.oportunities"
    _, issues, text = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "processors[pipeline].inputs[1]"
    assert "unknown topic 'crm.public.oportunities'" in error.message
    assert error.line == docs.line_of(text, "- crm.public.oportunities")


def test_sink_input_and_dead_letter_naming_unknown_topics_are_both_reported(doc, docs):
    doc["sinks"][0]["inputs"] = ["views.pipelines"]
    doc["sinks"][0]["dead_letter"] = "dlq.sink"
    _, issues, _ = docs.check(doc)
    found = {(i.location, i.message) for i in issues if i.is_error}
    assert ("sinks[reporting_sink].inputs[0]", "unknown topic 'views.pipelines'") in found
    assert ("sinks[reporting_sink].dead_letter", "unknown topic 'dlq.sink'") in found


def test_processor_output_naming_an_unknown_topic_is_an_error(doc, docs):
    doc["processors"][0]["outputs"].append("views.bookings")
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "processors[pipeline].outputs[1]"
    assert "unknown topic 'views.bookings'" in error.message


def test_reading_a_topic_without_being_among_its_consumers_is_an_error(doc, docs):
    _topic(doc, "crm.public.accounts")["consumers"] = []
    _, issues, text = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "processors[pipeline].inputs[0]"
    assert "processor 'pipeline' reads 'crm.public.accounts' but is not in that topic's consumers" in error.message
    assert error.line == docs.line_of(text, "- crm.public.accounts", after="name: pipeline")


def test_sink_reading_a_topic_without_being_among_its_consumers_is_an_error(doc, docs):
    _topic(doc, "views.pipeline")["consumers"] = ["pipeline"]
    _, issues, _ = docs.check(doc)
    errors = [i for i in issues if i.is_error]
    assert [e.location for e in errors] == ["sinks[reporting_sink].inputs[0]"]
    assert "sink 'reporting_sink' reads 'views.pipeline'" in errors[0].message


def test_consumer_that_is_no_processor_or_sink_is_an_error(doc, docs):
    _topic(doc, "views.pipeline")["consumers"].append("dashbord")
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].consumers[1]"
    assert "unknown consumer 'dashbord'" in error.message


def test_consumer_that_does_not_read_the_topic_is_a_warning(doc, docs):
    _topic(doc, "views.pipeline")["consumers"].append("pipeline")
    topology, issues, _ = docs.check(doc)
    assert topology is not None
    assert [(i.severity, i.location) for i in issues] == [(Severity.WARNING, "topics[views.pipeline].consumers[1]")]


def test_unknown_owner_domain_is_an_error_naming_the_declared_domains(doc, docs):
    _topic(doc, "views.pipeline")["owner"] = "finance"
    _, issues, text = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].owner"
    assert error.message == "unknown domain 'finance' (domains: crm, analytics)"
    assert error.line == docs.line_of(text, "owner: finance")


def test_missing_owner_is_an_error_at_the_topic(doc, docs):
    del _topic(doc, "views.pipeline")["owner"]
    _, issues, text = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].owner"
    assert error.message == "required field is missing"
    assert error.line == docs.line_of(text, "- name: views.pipeline")


@pytest.mark.parametrize("section,field", [("sources", "domain"), ("processors", "domain"), ("sinks", "domain")])
def test_unknown_domain_of_sources_processors_and_sinks_is_an_error(doc, docs, section, field):
    doc[section][0][field] = "nowhere"
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == f"{section}[{doc[section][0]['name']}].{field}"
    assert "unknown domain 'nowhere'" in error.message


@pytest.mark.parametrize("section", ["domains", "topics", "processors", "sinks", "sources"])
def test_duplicate_names_are_errors_pointing_at_the_first_definition(doc, docs, section):
    doc[section].append(dict(doc[section][0]))
    name = doc[section][0]["name"]
    _, issues, _ = docs.check(doc)
    duplicates = [i for i in issues if i.is_error and "duplicate" in i.message]
    assert len(duplicates) == 1, "\n".join(map(str, issues))
    assert duplicates[0].location == f"{section}[{name}].name"
    assert f"name {name!r} (first defined at {section}[{name}], line " in duplicates[0].message


def test_processor_and_sink_with_the_same_name_is_an_error(doc, docs):
    doc["sinks"][0]["name"] = "pipeline"
    _topic(doc, "views.pipeline")["consumers"] = ["pipeline"]
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "sinks[pipeline].name"
    assert "also a processor's name" in error.message


@pytest.mark.parametrize(
    "value,message",
    [(0, "must be at least 1 (got 0)"), (10001, "must be at most 10000 (got 10001)"), ("six", "must be an integer (got 'six')")],
)
def test_partitions_out_of_range_or_not_an_integer_is_an_error(doc, docs, value, message):
    _topic(doc, "views.pipeline")["partitions"] = value
    _, issues, text = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].partitions"
    assert error.message == message
    assert error.line == docs.line_of(text, "partitions:", after="- name: views.pipeline")


def test_partitions_as_a_boolean_is_not_taken_for_an_integer(doc, docs):
    _topic(doc, "views.pipeline")["partitions"] = True
    _, issues, _ = docs.check(doc)
    assert docs.only_error(issues).message == "must be an integer (got True)"


def test_replication_factor_below_one_is_an_error(doc, docs):
    _topic(doc, "views.pipeline")["replication_factor"] = 0
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].replication_factor"
    assert error.message == "must be at least 1 (got 0)"


def test_bad_defaults_are_reported_once_at_the_defaults(doc, docs):
    doc["defaults"]["partitions"] = -3
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "defaults.partitions"


def test_bad_cleanup_policy_lists_the_allowed_ones(doc, docs):
    _topic(doc, "views.pipeline")["cleanup_policy"] = "compacted"
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].cleanup_policy"
    assert error.message == "must be 'delete', 'compact' or 'compact,delete' (got 'compacted')"


def test_retention_below_minus_one_is_an_error(doc, docs):
    _topic(doc, "dlq.processors")["retention_ms"] = -2
    _, issues, _ = docs.check(doc)
    assert docs.only_error(issues).location == "topics[dlq.processors].retention_ms"


@pytest.mark.parametrize(
    "name,message",
    [
        ("views pipeline", "has characters Kafka does not allow (' ')"),
        ("views/pipeline", "has characters Kafka does not allow ('/')"),
        ("..", "is reserved by Kafka"),
        ("v" * 250, "is 250 characters long; Kafka allows at most 249"),
    ],
)
def test_topic_names_kafka_refuses_are_errors(doc, docs, name, message):
    doc["topics"].append({"name": name, "owner": "analytics", "key": ["k"], "description": "x"})
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == f"topics[{name}].name"
    assert message in error.message


def test_topic_names_differing_only_by_dot_and_underscore_collide(doc, docs):
    doc["topics"].append({"name": "views_pipeline", "owner": "analytics", "key": ["k"], "description": "x"})
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "topics[views_pipeline].name"
    assert "collides with 'views.pipeline'" in error.message


def test_source_table_outside_the_domain_contract_is_a_warning_only(doc, docs):
    doc["sources"][0]["tables"].append("leads")
    doc["topics"].append({"name": "crm.public.leads", "owner": "crm", "key": ["lead_id"], "description": "x"})
    topology, issues, text = docs.check(doc)
    assert topology is not None
    (warning,) = issues
    assert warning.severity is Severity.WARNING
    assert warning.location == "sources[crm].tables[2]"
    assert "'leads' is not in DOMAIN.md's crm tables" in warning.message
    assert warning.line == docs.line_of(text, "- leads")
    assert topology.warnings == [warning]


def test_captured_table_without_its_change_topic_is_an_error(doc, docs):
    doc["sources"][0]["tables"].append("change_orders")
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "sources[crm].tables[2]"
    assert "its topic 'crm.public.change_orders' is not declared in topics" in error.message


def test_two_sources_sharing_a_replication_slot_is_an_error(doc, docs):
    doc["domains"].append({"name": "psa", "description": "PSA.", "owner": {"team": "RMO", "email": "rmo@firm.example"}})
    doc["sources"].append(
        {"name": "psa", "domain": "psa", "database": "psa", "slot": "psmesh_crm", "publication": "p", "tables": ["resources"]}
    )
    doc["topics"].append({"name": "psa.public.resources", "owner": "psa", "key": ["resource_id"], "description": "x"})
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "sources[psa].slot"
    assert "also used by source 'crm'" in error.message


def test_invalid_slot_name_is_an_error(doc, docs):
    doc["sources"][0]["slot"] = "PsMesh-CRM"
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "sources[crm].slot"
    assert "not a valid replication slot name" in error.message


def test_schema_file_that_does_not_exist_is_an_error(doc, docs, tmp_path):
    _topic(doc, "views.pipeline")["value_schema"] = "schemas/views/pipeline.avsc"
    _, issues, text = docs.check(doc, base_dir=tmp_path)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].value_schema"
    assert "schema file 'schemas/views/pipeline.avsc' does not exist" in error.message
    assert error.line == docs.line_of(text, "value_schema:")


def test_schema_file_that_is_not_json_is_an_error_and_a_good_one_passes(doc, docs, tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "key.avsc").write_text('{"type": "string"}')
    (tmp_path / "schemas" / "value.avsc").write_text("{not json")
    topic = _topic(doc, "views.pipeline")
    topic["key_schema"] = "schemas/key.avsc"
    topic["value_schema"] = "schemas/value.avsc"
    _, issues, _ = docs.check(doc, base_dir=tmp_path)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].value_schema"
    assert "is not valid JSON" in error.message


def test_two_processors_writing_one_topic_break_the_single_writer_rule(doc, docs):
    doc["processors"].append(
        {"name": "bookings", "domain": "analytics", "inputs": ["crm.public.opportunities"], "outputs": ["views.pipeline"]}
    )
    _topic(doc, "crm.public.opportunities")["consumers"].append("bookings")
    _, issues, text = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "processors[bookings].outputs[0]"
    assert "'views.pipeline' is already written by processor 'pipeline'" in error.message
    assert error.line == docs.line_of(text, "- views.pipeline", after="name: bookings")


def test_processor_writing_a_change_topic_breaks_the_single_writer_rule(doc, docs):
    doc["processors"][0]["outputs"].append("crm.public.accounts")
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert "already written by the capture of source 'crm'" in error.message


def test_two_processors_maintaining_one_view_is_an_error(doc, docs):
    doc["processors"].append(
        {"name": "pipeline2", "domain": "analytics", "inputs": ["crm.public.opportunities"], "tables": ["pipeline"]}
    )
    _topic(doc, "crm.public.opportunities")["consumers"].append("pipeline2")
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "processors[pipeline2].tables[0]"


def test_unknown_field_is_an_error_listing_the_allowed_fields(doc, docs):
    _topic(doc, "views.pipeline")["colour"] = "red"
    _, issues, text = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].colour"
    assert error.message.startswith("unknown field 'colour' (allowed: name, owner, partitions,")
    assert error.line == docs.line_of(text, "colour: red")


def test_unknown_nested_field_lists_the_nested_model_fields(doc, docs):
    doc["domains"][0]["owner"]["phone"] = "555"
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "domains[crm].owner.phone"
    assert error.message == "unknown field 'phone' (allowed: team, email)"


def test_unknown_section_is_an_error(doc, docs):
    doc["pipelines"] = []
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "pipelines"
    assert "unknown section 'pipelines'" in error.message


def test_section_that_is_not_a_list_is_an_error(doc, docs):
    doc["sinks"] = {"reporting_sink": {}}
    _topic(doc, "views.pipeline")["consumers"] = []
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert (error.location, error.message) == ("sinks", "must be a list (got a mapping)")


def test_item_that_is_not_a_mapping_is_located_by_index(doc, docs):
    doc["domains"].append("finance")
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert (error.location, error.message) == ("domains[2]", "must be a mapping (got a string)")


def test_bad_owner_email_is_an_error(doc, docs):
    doc["domains"][1]["owner"]["email"] = "data at firm"
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "domains[analytics].owner.email"
    assert "not an e-mail address" in error.message


def test_every_error_is_collected_not_only_the_first(doc, docs):
    _topic(doc, "views.pipeline")["partitions"] = 0
    _topic(doc, "crm.public.accounts")["owner"] = "sales"
    doc["processors"][0]["inputs"].append("crm.public.leads")
    doc["domains"].append(dict(doc["domains"][0]))
    _, issues, _ = docs.check(doc)
    locations = [i.location for i in issues if i.is_error]
    assert sorted(locations) == sorted(
        [
            "topics[views.pipeline].partitions",
            "topics[crm.public.accounts].owner",
            "processors[pipeline].inputs[2]",
            "domains[crm].name",
        ]
    )
    lines = [i.line for i in issues]
    assert lines == sorted(lines), "issues are reported in file order"


def test_an_invalid_topic_still_counts_as_declared_for_references(doc, docs):
    _topic(doc, "views.pipeline")["partitions"] = 0
    _, issues, _ = docs.check(doc)
    # only the partitions error: no cascade of "unknown topic views.pipeline"
    assert docs.only_error(issues).location == "topics[views.pipeline].partitions"


def test_load_topology_raises_topology_error_with_all_issues(doc, docs, tmp_path):
    _topic(doc, "views.pipeline")["partitions"] = 0
    _topic(doc, "views.pipeline")["cleanup_policy"] = "never"
    path = tmp_path / "topology.yaml"
    path.write_text(docs.dump(doc))
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    assert [i.location for i in caught.value.errors] == [
        "topics[views.pipeline].partitions",
        "topics[views.pipeline].cleanup_policy",
    ]
    assert f"{path}:" in str(caught.value)


def test_cli_validate_prints_located_errors_and_exits_non_zero(doc, docs, tmp_path):
    _topic(doc, "views.pipeline")["owner"] = "finance"
    doc["processors"][0]["inputs"][1] = "crm.public.oportunities"
    path = tmp_path / "topology.yaml"
    text = docs.dump(doc)
    path.write_text(text)
    result = CliRunner().invoke(topology_cli, ["validate", "--file", str(path)])
    assert result.exit_code == 1
    assert (
        f"{path}:{docs.line_of(text, 'owner: finance')}: topics[views.pipeline].owner: "
        "unknown domain 'finance' (domains: crm, analytics)"
    ) in result.output
    assert (
        f"{path}:{docs.line_of(text, '- crm.public.oportunities')}: processors[pipeline].inputs[1]: "
        "unknown topic 'crm.public.oportunities'"
    ) in result.output
    assert "2 error(s)" in result.output


def test_cli_validate_prints_warnings_but_succeeds(doc, docs, tmp_path):
    doc["sources"][0]["tables"].append("leads")
    doc["topics"].append({"name": "crm.public.leads", "owner": "crm", "key": ["lead_id"], "description": "x"})
    path = tmp_path / "topology.yaml"
    path.write_text(docs.dump(doc))
    result = CliRunner().invoke(topology_cli, ["validate", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: sources[crm].tables[2]: table 'leads'" in result.output
    assert "ok: 2 domains, 1 sources, 5 topics, 1 processors, 1 sinks" in result.output


def test_cli_validate_of_a_missing_file_exits_non_zero(tmp_path):
    result = CliRunner().invoke(topology_cli, ["validate", "--file", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "cannot read the file" in result.output


def test_schema_path_is_relative_to_the_topology_file(doc, docs, tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "pipeline.avsc").write_text(json.dumps({"type": "record", "name": "P", "fields": []}))
    _topic(doc, "views.pipeline")["value_schema"] = "schemas/pipeline.avsc"
    path = tmp_path / "topology.yaml"
    path.write_text(docs.dump(doc))
    topology = load_topology(path)
    assert topology.schema_path("schemas/pipeline.avsc").is_file()


def test_consumers_are_still_checked_on_a_topic_with_another_error(doc, docs):
    topic = _topic(doc, "crm.public.accounts")
    topic["partitions"] = 0
    topic["consumers"] = []
    _, issues, _ = docs.check(doc)
    assert sorted(i.location for i in issues if i.is_error) == [
        "processors[pipeline].inputs[0]",
        "topics[crm.public.accounts].partitions",
    ]


def test_a_dead_letter_topic_that_is_a_change_topic_or_compacted_is_an_error_and_a_finite_retention_a_warning(
        doc, docs):
    doc["sinks"][0]["dead_letter"] = "crm.public.accounts"
    _, issues, _ = docs.check(doc)
    found = {(i.location, i.message) for i in issues if i.is_error}
    assert ("sinks[reporting_sink].dead_letter",
            "dead-letter topic 'crm.public.accounts' is the change topic of source 'crm'; letters need a topic of "
            "their own") in found
    assert any("is compacted (compact)" in message for _, message in found)

    doc["sinks"][0]["dead_letter"] = "dlq.processors"
    _topic(doc, "dlq.processors")["retention_ms"] = 3_600_000
    topology, issues, _ = docs.check(doc)
    assert topology is not None
    assert {(i.severity, i.message) for i in issues} == {
        (Severity.WARNING, "dead-letter topic 'dlq.processors' deletes letters after retention_ms 3600000, "
                           "handled or not; -1 keeps them")}


def test_two_sources_on_one_database_sharing_a_publication_is_an_error(doc, docs):
    second = {**doc["sources"][0], "name": "crm2", "slot": "psmesh_crm2", "tables": ["accounts"]}
    doc["sources"].append(second)
    doc["topics"].append({**_topic(doc, "crm.public.accounts"), "name": "crm2.public.accounts"})
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "sources[crm2].publication"
    assert "publication 'psmesh_crm' of database 'crm' is also used by source 'crm'" in error.message


def test_a_schema_file_that_is_json_but_not_avro_is_an_error(doc, docs, tmp_path):
    (tmp_path / "pipeline-value.avsc").write_text("[1, 2, 3]")
    _topic(doc, "views.pipeline")["value_schema"] = "pipeline-value.avsc"
    _, issues, _ = docs.check(doc, base_dir=tmp_path)
    error = docs.only_error(issues)
    assert error.location == "topics[views.pipeline].value_schema"
    assert error.message.startswith("schema file 'pipeline-value.avsc' is not an Avro schema: ")


def test_an_entry_listed_twice_is_an_error_where_it_repeats(doc, docs):
    doc["processors"][0]["inputs"].append("crm.public.accounts")
    doc["sinks"][0]["target"]["tables"].append("pipeline")
    _topic(doc, "views.pipeline")["consumers"].append("reporting_sink")
    _, issues, _ = docs.check(doc)
    found = {(i.location, i.message) for i in issues if i.is_error}
    assert found == {("processors[pipeline].inputs[2]", "'crm.public.accounts' is listed twice"),
                     ("sinks[reporting_sink].target.tables[1]", "'pipeline' is listed twice"),
                     ("topics[views.pipeline].consumers[1]", "'reporting_sink' is listed twice")}


def test_a_sink_reading_a_topic_nobody_writes_is_a_warning(doc, docs):
    doc["processors"][0]["outputs"] = []
    topology, issues, _ = docs.check(doc)
    assert topology is not None
    assert ("sinks[reporting_sink].inputs[0]", Severity.WARNING) in {(i.location, i.severity) for i in issues}


def test_a_source_s_dead_letter_topic_is_declared_and_kept_like_the_others(doc, docs):
    doc["sources"][0]["dead_letter"] = "dlq.nowhere"
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert (error.location, error.message) == ("sources[crm].dead_letter", "unknown topic 'dlq.nowhere'")

    doc["sources"][0]["dead_letter"] = "crm.public.accounts"
    _, issues, _ = docs.check(doc)
    found = {(i.location, i.message) for i in issues if i.is_error}
    assert ("sources[crm].dead_letter", "dead-letter topic 'crm.public.accounts' is the change topic of source 'crm'; "
                                        "letters need a topic of their own") in found

    doc["sources"][0]["dead_letter"] = "dlq.processors"
    topology, issues, _ = docs.check(doc)
    assert topology is not None and not [i for i in issues if i.is_error]
    assert "dlq.processors" in topology.dead_letter_topics
