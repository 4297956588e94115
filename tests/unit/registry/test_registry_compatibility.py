"""Which reader/writer pairs each level asks Apache Avro's checker about."""

from __future__ import annotations

import json

import pytest

from psmesh.registry.canonical import parse_avro
from psmesh.registry.compatibility import (
    CompatibilityLevel,
    Direction,
    check_compatibility,
    check_pair,
    describe_incompatibilities,
)
from psmesh.registry.exceptions import InvalidCompatibilityLevelError


def _schema(*fields: dict):
    return parse_avro(json.dumps({"type": "record", "name": "Project", "fields": list(fields)})).parsed


ID = {"name": "id", "type": "long"}
NAME_REQUIRED = {"name": "name", "type": "string"}
NAME_OPTIONAL = {"name": "name", "type": ["null", "string"], "default": None}
BUDGET_DEFAULTED = {"name": "budget", "type": "double", "default": 0.0}

V1 = _schema(ID)
WITH_REQUIRED = _schema(ID, NAME_REQUIRED)  # new field, no default
WITH_DEFAULTED = _schema(ID, BUDGET_DEFAULTED)  # new field with default
WITHOUT_ID = _schema(NAME_OPTIONAL)  # drops a field without default


def test_adding_a_field_without_default_breaks_backward():
    found = check_compatibility(WITH_REQUIRED, [(1, V1)], CompatibilityLevel.BACKWARD)
    assert len(found) == 1
    problem = found[0]
    assert problem.version == 1
    assert problem.direction is Direction.BACKWARD
    assert problem.kinds == ("reader_field_missing_default_value",)
    assert problem.messages == ("name",)
    assert problem.locations == ("/fields/1",)


def test_adding_a_field_without_default_is_forward_compatible():
    assert check_compatibility(WITH_REQUIRED, [(1, V1)], CompatibilityLevel.FORWARD) == []


def test_adding_a_field_with_default_is_fully_compatible():
    assert check_compatibility(WITH_DEFAULTED, [(1, V1)], CompatibilityLevel.FULL) == []


def test_removing_a_field_without_default_breaks_forward_only():
    assert check_compatibility(WITHOUT_ID, [(1, V1)], CompatibilityLevel.BACKWARD) == []
    found = check_compatibility(WITHOUT_ID, [(1, V1)], CompatibilityLevel.FORWARD)
    assert [f.direction for f in found] == [Direction.FORWARD]
    assert found[0].kinds == ("reader_field_missing_default_value",)


def test_full_reports_both_directions():
    changed = _schema({"name": "id", "type": "string"})
    found = check_compatibility(changed, [(1, V1)], CompatibilityLevel.FULL)
    assert {f.direction for f in found} == {Direction.BACKWARD, Direction.FORWARD}
    assert all(f.kinds == ("type_mismatch",) for f in found)


def test_int_to_long_is_backward_but_not_forward():
    long_id = _schema({"name": "id", "type": "long"})
    int_id = _schema({"name": "id", "type": "int"})
    assert check_compatibility(long_id, [(1, int_id)], CompatibilityLevel.BACKWARD) == []
    assert check_compatibility(long_id, [(1, int_id)], CompatibilityLevel.FORWARD) != []


def test_non_transitive_level_only_checks_the_latest_version():
    # v1 has a required field the candidate lacks... as reader the candidate needs
    # a default for every field v1 lacks: build a history where only v1 is a problem.
    v1 = _schema(ID)
    v2 = _schema(ID, BUDGET_DEFAULTED, NAME_REQUIRED)
    candidate = _schema(ID, NAME_REQUIRED)
    history = [(1, v1), (2, v2)]
    assert check_compatibility(candidate, history, CompatibilityLevel.BACKWARD) == []
    found = check_compatibility(candidate, history, CompatibilityLevel.BACKWARD_TRANSITIVE)
    assert [f.version for f in found] == [1]


def test_none_checks_nothing():
    changed = _schema({"name": "id", "type": "string"})
    assert check_compatibility(changed, [(1, V1)], CompatibilityLevel.NONE) == []


def test_first_version_is_always_compatible():
    assert check_compatibility(V1, [], CompatibilityLevel.FULL_TRANSITIVE) == []


def test_check_pair_is_none_for_identical_schemas():
    assert check_pair(V1, V1) is None


def test_message_names_subject_level_and_what_is_incompatible():
    found = check_compatibility(WITH_REQUIRED, [(1, V1)], CompatibilityLevel.BACKWARD)
    message = describe_incompatibilities("psa.public.project-value", CompatibilityLevel.BACKWARD, found)
    assert '"psa.public.project-value"' in message
    assert "BACKWARD" in message
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in message
    assert "/fields/1" in message
    assert "version 1" in message


@pytest.mark.parametrize("value", ["backward", "FULL_TRANSITIVE", " none "])
def test_level_parses_any_case(value):
    assert CompatibilityLevel.parse(value).value == value.strip().upper()


@pytest.mark.parametrize("value", ["sideways", "", None, 3])
def test_unknown_level_is_42203(value):
    with pytest.raises(InvalidCompatibilityLevelError) as info:
        CompatibilityLevel.parse(value)
    assert info.value.error_code == 42203


def test_level_directions():
    assert CompatibilityLevel.FULL.checks_backward and CompatibilityLevel.FULL.checks_forward
    assert CompatibilityLevel.BACKWARD_TRANSITIVE.transitive
    assert not CompatibilityLevel.FORWARD.checks_backward
    assert not CompatibilityLevel.NONE.checks_backward and not CompatibilityLevel.NONE.checks_forward
