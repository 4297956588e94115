"""Parsing submitted Avro schemas, and what makes two of them "the same schema".

The registry gives one global id to one schema, whatever subject it is
registered under and however its JSON was spaced or its keys ordered. The
identity used for that is the *normalized JSON* of the schema as Apache Avro
parsed it: every attribute Avro keeps (logical types, precision and scale,
defaults, aliases, docs, custom properties), with names fully qualified, keys
sorted and no whitespace.

Avro's Parsing Canonical Form (and its CRC-64-AVRO fingerprint) is *not*
enough on its own: it strips ``logicalType``, ``precision``, ``scale`` and
``default``, so ``decimal(10,2)`` and ``decimal(12,4)`` share a canonical
form while a reader must decode their bytes differently. Giving them one id
would make a deserializer apply the wrong scale. The fingerprint is still
computed and reported (logs, tests) as the conventional short name of a
schema's shape.

Two schemas the specification reads as one are one schema here, and two it
reads as different are two, even where Python's avro writes them otherwise:

- full names are resolved from the submitted JSON by the specification's
  rules ("Names"): a nested named type without ``namespace`` takes the
  enclosing one, but ``"namespace": ""`` puts it in the null namespace.
  Python's avro reads ``""`` as absent, so ``firm.erp.Line`` and ``Line``
  would share an id;
- a field's ``"order": "ascending"`` is the default ("Complex Types") and is
  left out, as Java's ``Schema.toString()`` leaves it out.

This is also what Confluent's server does in effect: it keys schemas by
Avro's own compact ``Schema.toString()``, which keeps the same attributes,
writes ``"namespace": ""`` for a null-namespace type inside a namespaced one
and leaves out an ascending order.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field

import avro.schema

from psmesh.registry.exceptions import InvalidSchemaError

AVRO = "AVRO"
#: Schema types this registry can register. Confluent's JSON and PROTOBUF are
#: refused with 42201 rather than stored unchecked.
SUPPORTED_SCHEMA_TYPES = (AVRO,)


@dataclass(frozen=True)
class AvroSchema:
    """A parsed, valid Avro schema.

    ``text`` is what the registry stores and serves (the submitted JSON,
    compacted, key order kept); ``normalized`` is the identity key: two
    schemas get the same id exactly when their ``normalized`` are equal.
    """

    text: str
    normalized: str
    parsed: avro.schema.Schema = field(compare=False, repr=False)

    @property
    def canonical_form(self) -> str:
        """Avro's Parsing Canonical Form (shape only, see module docstring).

        As Python's avro computes it: a nested type declared with
        ``"namespace": ""`` keeps the enclosing namespace here. The identity
        (``normalized``) does not rely on it.
        """
        return self.parsed.canonical_form

    @property
    def fingerprint(self) -> str:
        """CRC-64-AVRO fingerprint of the Parsing Canonical Form, as hex."""
        return self.parsed.fingerprint().hex()


def parse_avro(text: object) -> AvroSchema:
    """Parse a schema string as sent in a registry request body.

    Raises :class:`InvalidSchemaError` (42201) with Avro's own reason when
    the text is not JSON or not a valid Avro schema.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchemaError("Empty schema: the request body needs a non-empty \"schema\" string")
    try:
        document = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise InvalidSchemaError(f"Invalid schema: not valid JSON ({exc})") from exc
    try:
        with warnings.catch_warnings():
            # Avro warns (IgnoredLogicalType) and falls back to the underlying
            # type for a malformed logical type, as the Java parser does; the
            # schema is still valid Avro, so it is accepted the same way.
            warnings.simplefilter("ignore")
            parsed = avro.schema.make_avsc_object(document)
    except Exception as exc:  # avro raises SchemaParseException, but also TypeError/AttributeError on odd JSON
        raise InvalidSchemaError(f"Invalid schema: {exc}") from exc
    _check_field_names(parsed, set())
    return AvroSchema(
        text=json.dumps(document, separators=(",", ":"), ensure_ascii=False),
        normalized=normalize(parsed, document),
        parsed=parsed,
    )


#: Avro's names: ``[A-Za-z_][A-Za-z0-9_]*`` (the specification, "Names"). Python's avro checks those of types
#: and enum symbols, not fields; Java's parser, which Confluent's registry and Java clients use, checks all.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _not_json(constant: str) -> float:
    """NaN and Infinity are not JSON: a Java client (Jackson) could not read the schema back."""
    raise InvalidSchemaError(f"Invalid schema: {constant} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidSchemaError(f"Invalid schema: {text} is out of a double's range")
    return value


def _check_field_names(schema: avro.schema.Schema, seen: set[str]) -> None:
    """Every record field name of ``schema`` and the schemas in it is an Avro name (42201 otherwise)."""
    if isinstance(schema, avro.schema.RecordSchema):
        if schema.fullname in seen:
            return
        seen.add(schema.fullname)
        for f in schema.fields:
            if not _NAME.match(f.name):
                raise InvalidSchemaError(
                    f"Invalid schema: field name {f.name!r} of record {schema.fullname} is not an Avro name "
                    "(a letter or _, then letters, digits or _)")
            _check_field_names(f.type, seen)
    elif isinstance(schema, avro.schema.ArraySchema):
        _check_field_names(schema.items, seen)
    elif isinstance(schema, avro.schema.MapSchema):
        _check_field_names(schema.values, seen)
    elif isinstance(schema, avro.schema.UnionSchema):
        for branch in schema.schemas:
            _check_field_names(branch, seen)


def normalize(parsed: avro.schema.Schema, document: object) -> str:
    """The identity key of ``parsed``, the schema Avro made of the JSON ``document`` (see module docstring)."""
    identity = _identity_json(parsed, document, None, {})
    return json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _identity_json(
    schema: avro.schema.Schema, document: object, namespace: str | None, fullnames: dict[int, str]
) -> object:
    """``schema`` as JSON, each named type under its full name and without the defaults Avro implies.

    ``document`` is the part of the submitted JSON ``schema`` was parsed
    from, ``namespace`` the enclosing namespace (``None``: the null one),
    and ``fullnames`` the full names of the named types defined so far (by
    ``id``), which later references to them are written as.
    """
    if isinstance(schema, avro.schema.NamedSchema):
        if isinstance(document, str):  # a reference: Avro has already resolved it to a type defined earlier
            return fullnames[id(schema)]
        fullname = _fullname(document["name"], document.get("namespace"), namespace)
        fullnames[id(schema)] = fullname
        body = {key: value for key, value in schema.props.items() if key != "namespace"}
        body["name"] = fullname
        if isinstance(schema, avro.schema.RecordSchema):
            inner = fullname.rpartition(".")[0] or None
            body["fields"] = [
                _field_json(f, d, inner, fullnames) for f, d in zip(schema.fields, document["fields"], strict=True)
            ]
        return body
    if isinstance(schema, avro.schema.ArraySchema):
        return {**schema.props, "items": _identity_json(schema.items, document["items"], namespace, fullnames)}
    if isinstance(schema, avro.schema.MapSchema):
        return {**schema.props, "values": _identity_json(schema.values, document["values"], namespace, fullnames)}
    if isinstance(schema, avro.schema.UnionSchema) and isinstance(document, list):
        return [_identity_json(s, d, namespace, fullnames) for s, d in zip(schema.schemas, document, strict=True)]
    # Primitives (logical types included) name no type; nor does the protocol-only "error_union"
    # Python's avro also accepts, kept as avro writes it.
    return schema.to_json()


def _field_json(field: avro.schema.Field, document: dict, namespace: str | None, fullnames: dict[int, str]) -> dict:
    body = dict(field.props)
    body["type"] = _identity_json(field.type, document["type"], namespace, fullnames)
    if body.get("order") == "ascending":
        del body["order"]  # the default order (specification, "Complex Types")
    return body


def _fullname(name: str, namespace_attribute: object, enclosing: str | None) -> str:
    """The full name of a named type declared with ``name`` and ``namespace_attribute`` (specification, "Names").

    A dotted name is already full. An absent (or JSON null) ``namespace``
    takes the enclosing namespace; ``""`` is the null namespace, which
    Python's avro reads as absent (``namespace = namespace or None`` in
    ``avro.schema.NamedSchema``, avro 1.12).
    """
    if "." in name:
        return name
    namespace = enclosing if namespace_attribute is None else namespace_attribute
    return f"{namespace}.{name}" if namespace else name
