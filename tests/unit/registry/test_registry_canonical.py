"""When two submitted schemas are the same schema (and so share a global id)."""

from __future__ import annotations

import json

import pytest

from psmesh.registry.canonical import parse_avro
from psmesh.registry.exceptions import InvalidSchemaError


def _record(*fields: dict, name: str = "Invoice", namespace: str | None = "firm.erp") -> str:
    body: dict = {"type": "record", "name": name, "fields": list(fields)}
    if namespace:
        body["namespace"] = namespace
    return json.dumps(body)


def _decimal(precision: int, scale: int) -> dict:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


def test_whitespace_and_key_order_do_not_change_identity():
    a = parse_avro('{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}')
    b = parse_avro('{ "fields" : [ { "type" : "int", "name" : "a" } ],\n "name" : "R", "type" : "record" }')
    assert a.normalized == b.normalized
    assert a.fingerprint == b.fingerprint


def test_namespace_attribute_and_qualified_name_are_the_same_schema():
    a = parse_avro(_record({"name": "a", "type": "int"}, name="Invoice", namespace="firm.erp"))
    b = parse_avro(_record({"name": "a", "type": "int"}, name="firm.erp.Invoice", namespace=None))
    assert a.normalized == b.normalized


def test_decimal_scale_changes_identity_though_canonical_form_is_equal():
    # Parsing Canonical Form drops logical types: identity must not rely on it alone.
    a = parse_avro(_record({"name": "amount", "type": _decimal(10, 2)}))
    b = parse_avro(_record({"name": "amount", "type": _decimal(12, 4)}))
    assert a.canonical_form == b.canonical_form
    assert a.fingerprint == b.fingerprint
    assert a.normalized != b.normalized


def test_default_value_changes_identity():
    a = parse_avro(_record({"name": "note", "type": ["null", "string"], "default": None}))
    b = parse_avro(_record({"name": "note", "type": ["null", "string"]}))
    assert a.normalized != b.normalized


def test_field_order_changes_identity():
    a = parse_avro(_record({"name": "a", "type": "int"}, {"name": "b", "type": "int"}))
    b = parse_avro(_record({"name": "b", "type": "int"}, {"name": "a", "type": "int"}))
    assert a.normalized != b.normalized


def _nested(line: dict) -> str:
    """A record of namespace firm.erp whose one field is the named type ``line``."""
    return _record({"name": "line", "type": {"type": "record", "fields": [{"name": "a", "type": "int"}], **line}})


def test_empty_namespace_puts_a_nested_type_in_the_null_namespace():
    # Avro spec, "Names": an absent namespace is taken from the enclosing type (firm.erp.Line),
    # while "" is the null namespace (Line). Python's avro reads "" as absent.
    inherited = parse_avro(_nested({"name": "Line"}))
    null_namespace = parse_avro(_nested({"name": "Line", "namespace": ""}))
    assert inherited.normalized != null_namespace.normalized
    assert inherited.normalized == parse_avro(_nested({"name": "Line", "namespace": "firm.erp"})).normalized
    assert inherited.normalized == parse_avro(_nested({"name": "firm.erp.Line"})).normalized


def test_a_type_nested_in_the_null_namespace_inherits_the_null_namespace():
    def line_holding(kind: dict) -> str:
        return _nested({"name": "Line", "namespace": "", "fields": [{"name": "kind", "type": kind}]})

    kind = {"type": "enum", "name": "Kind", "symbols": ["A"]}
    inherited = parse_avro(line_holding(kind))
    assert inherited.normalized == parse_avro(line_holding({**kind, "namespace": ""})).normalized
    assert inherited.normalized != parse_avro(line_holding({**kind, "namespace": "firm.erp"})).normalized


def test_ascending_field_order_is_the_default_and_does_not_change_identity():
    # Avro spec, "Complex Types": order is optional and defaults to "ascending"; Java's
    # Schema.toString, the key of Confluent's registry, writes it only when it is not ascending.
    implicit = parse_avro(_record({"name": "a", "type": "int"}))
    ascending = parse_avro(_record({"name": "a", "type": "int", "order": "ascending"}))
    descending = parse_avro(_record({"name": "a", "type": "int", "order": "descending"}))
    assert implicit.normalized == ascending.normalized
    assert implicit.normalized != descending.normalized
    assert ascending.text != implicit.text  # only the identity changes: the stored text is as submitted


def test_stored_text_is_compacted_submitted_json_in_its_key_order():
    parsed = parse_avro('{ "type": "record",  "name": "R", "fields": [ {"name": "a", "type": "int"} ] }')
    assert parsed.text == '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}'


def test_primitive_schema_parses():
    assert parse_avro('"string"').normalized == '"string"'
    assert parse_avro('{"type": "string"}').normalized == parse_avro('"string"').normalized


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"type": "recrd", "name": "R", "fields": []}',
        '{"type": "record", "name": "R"}',
        '{"type": "enum", "name": "E", "symbols": ["A", "A"]}',
        None,
        42,
    ],
)
def test_invalid_schema_is_refused_with_42201(text):
    with pytest.raises(InvalidSchemaError) as info:
        parse_avro(text)
    assert info.value.error_code == 42201
    assert info.value.http_status == 422
