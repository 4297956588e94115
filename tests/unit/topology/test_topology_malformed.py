"""Malformed files and wrong section types: each is a located error, never a traceback or a silent default."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from psmesh.topology.cli import topology as topology_cli
from psmesh.topology.model import RETENTION_MS_MAX, check_text, check_topology


def _validate(path):
    return CliRunner().invoke(topology_cli, ["validate", "--file", str(path)])


def test_a_control_character_is_an_invalid_yaml_error_with_its_line(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text('version: 1\ndomains:\n  - description: "bell \x07"\n', encoding="utf-8")
    result = _validate(path)
    assert result.exit_code == 1, result.output
    assert f"{path}:3: invalid YAML: unacceptable character #x0007" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_file_that_is_not_utf8_is_an_error_with_its_line(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"version: 1\n# caf\xe9\n")
    topology, issues = check_topology(path)
    assert topology is None
    (error,) = issues
    assert str(error) == f"{path}:2: not UTF-8 text: byte 0xe9 at column 6; save the file as UTF-8"
    result = _validate(path)
    assert result.exit_code == 1 and f"{path}:2: not UTF-8 text" in result.output


def test_a_recursive_alias_is_an_error_at_its_line(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("version: 1\nunmanaged_topics: &u [*u]\n", encoding="utf-8")
    result = _validate(path)
    assert result.exit_code == 1, result.output
    assert f"{path}:2: unmanaged_topics[0]: recursive alias: this value contains itself" in result.output


def test_nesting_deeper_than_the_parser_can_follow_is_an_error():
    topology, issues = check_text("version: " + "[" * 5000 + "]" * 5000 + "\n")
    assert topology is None
    assert [i.message for i in issues] == ["invalid YAML: nested too deeply"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("defaults: 0", "defaults: must be a mapping (got an integer)"),
        ("defaults: []", "defaults: must be a mapping (got a list)"),
        ("clusters: false", "clusters: must be a mapping (got a boolean)"),
        ('unmanaged_topics: ""', "unmanaged_topics: must be a list (got a string)"),
    ],
)
def test_a_section_of_the_wrong_type_is_an_error_not_an_empty_section(line, message):
    topology, issues = check_text(f"version: 1\n{line}\n", file="t.yaml")
    assert topology is None
    assert [str(i) for i in issues] == [f"t.yaml:2: {message}"]


def test_an_empty_section_is_its_default():
    topology, issues = check_text("version: 1\ndefaults:\nclusters:\nunmanaged_topics:\n")
    assert issues == [] and topology is not None
    assert topology.defaults.partitions == 6


def test_retention_beyond_a_java_long_is_an_error(doc, docs):
    doc["topics"][3]["retention_ms"] = RETENTION_MS_MAX + 1
    _, issues, _ = docs.check(doc)
    error = docs.only_error(issues)
    assert error.location == "topics[dlq.processors].retention_ms"
    assert error.message == f"must be at most {2**63 - 1} (got {2**63})"
    doc["topics"][3]["retention_ms"] = RETENTION_MS_MAX
    assert docs.check(doc)[0] is not None


def test_a_misspelt_topic_name_reports_the_misspelling_and_not_the_subjects(doc, docs):
    topic = doc["topics"][3]
    topic["nam"] = topic.pop("name")
    _, issues, _ = docs.check(doc)
    mine = sorted(i.message for i in issues if i.location.startswith("topics[3]"))
    assert mine[0] == "required field is missing"
    assert mine[1].startswith("unknown field 'nam' (allowed: name, ")
    assert len(mine) == 2, mine


def test_version_true_is_not_version_1():
    topology, issues = check_text("version: true\n")
    assert topology is None
    assert [(i.message, i.line) for i in issues] == [("must be 1 (got a boolean, true)", 1)]
