"""Line numbers and YAML-level problems: what the loader itself reports."""

from __future__ import annotations

from psmesh.topology.model import check_text
from psmesh.topology.yamlmarks import parse_yaml


def test_lines_are_recorded_for_keys_and_sequence_items():
    parsed = parse_yaml("topics:\n  - name: a\n    partitions: 3\n  - name: b\n    consumers:\n      - x\n")
    assert parsed.lines[("topics",)] == 1
    assert parsed.lines[("topics", 0)] == 2
    assert parsed.lines[("topics", 0, "partitions")] == 3
    assert parsed.lines[("topics", 1, "consumers", 0)] == 6


def test_merge_keys_resolve_and_keep_the_lines_of_the_mapping_that_uses_them():
    text = "base: &base\n  partitions: 3\ntopics:\n  - <<: *base\n    name: a\n"
    parsed = parse_yaml(text)
    assert parsed.data["topics"][0] == {"partitions": 3, "name": "a"}
    assert parsed.problems == []
    assert parsed.lines[("topics", 0, "name")] == 5


def test_duplicate_keys_are_reported_with_both_lines():
    parsed = parse_yaml("topics:\n  - name: a\n    partitions: 3\n    partitions: 4\n")
    ((path, line, message),) = parsed.problems
    assert path == ("topics", 0, "partitions")
    assert line == 4
    assert "duplicate key 'partitions' (first on line 3)" in message


def test_duplicate_key_makes_the_topology_invalid_at_its_location():
    _, issues = check_text("version: 1\nversion: 1\n")
    (error,) = issues
    assert (error.location, error.line) == ("version", 2)


def test_yaml_syntax_error_is_an_issue_with_its_line():
    topology, issues = check_text("domains:\n  - name: crm\n    owner: [unclosed\n", file="t.yaml")
    assert topology is None
    (error,) = issues
    assert error.is_error
    assert error.line is not None and error.line >= 3
    assert error.message.startswith("invalid YAML:")
    assert str(error).startswith(f"t.yaml:{error.line}: ")


def test_a_document_that_is_not_a_mapping_is_an_error():
    _, issues = check_text("- a\n- b\n")
    (error,) = issues
    assert "must be a YAML mapping" in error.message


def test_an_empty_file_is_an_error():
    topology, issues = check_text("")
    assert topology is None
    (error,) = issues
    assert error.message.startswith("the file must be a YAML mapping")
