"""The compiled encoder writes exactly the bytes fastavro writes, for every DOMAIN.md type."""

from __future__ import annotations

import io
import random
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import fastavro
import pytest

from streams.avrocodegen import UnsupportedSchema, compile_encoder
from streams.envelope import ColumnSpec, key_schema, value_schema

COLUMNS = [
    ColumnSpec("id", 20, -1, True),
    ColumnSpec("small", 23),
    ColumnSpec("amount", 1700, ((14 << 16) | 2) + 4),
    ColumnSpec("probability", 1700, ((5 << 16) | 2) + 4),
    ColumnSpec("hours", 1700, ((10 << 16) | 2) + 4),
    ColumnSpec("free", 1700, -1),
    ColumnSpec("day", 1082),
    ColumnSpec("at", 1184),
    ColumnSpec("local", 1114),
    ColumnSpec("clock", 1083),
    ColumnSpec("flag", 16),
    ColumnSpec("name", 25),
    ColumnSpec("code", 1042),
    ColumnSpec("tags", 1009),
    ColumnSpec("doc", 3802),
    ColumnSpec("blob", 17),
    ColumnSpec("ratio", 701),
]


def _fastavro(schema: dict, record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


def _random_row(rng: random.Random, nullable: bool) -> dict:
    def maybe(value):
        return None if nullable and rng.random() < 0.2 else value

    cents = rng.choice([0, 1, -1, 127, 128, -128, -129, 255, 256, 10**12 - 1, -(10**12 - 1), rng.randint(-10**14 + 1, 10**14 - 1)])
    return {
        "id": rng.choice([0, 1, -1, 63, 64, -64, -65, 2**31, -(2**63), 2**63 - 1, rng.randint(-2**40, 2**40)]),
        "small": maybe(rng.randint(-2**31, 2**31 - 1)),
        "amount": maybe(Decimal(cents).scaleb(-2)),
        "probability": maybe(Decimal(rng.randint(0, 10000)).scaleb(-2)),
        "hours": maybe(Decimal(rng.randint(-10**8, 10**8)).scaleb(-2)),
        "free": maybe(str(Decimal(rng.randint(-10**6, 10**6)).scaleb(-rng.randint(0, 6)))),
        "day": maybe(date(1970, 1, 1) + timedelta(days=rng.randint(-30000, 30000))),
        "at": maybe(datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(microseconds=rng.randint(-10**15, 10**15))),
        "local": maybe(datetime(2001, 1, 1) + timedelta(microseconds=rng.randint(0, 10**15))),
        "clock": maybe(time(rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999999))),
        "flag": maybe(rng.random() < 0.5),
        "name": maybe(rng.choice(["", "Acme", "Émile & Co", "東京", "x" * 300])),
        "code": maybe("EUR"),
        "tags": maybe(rng.choice([[], ["aws"], ["a", None, "", "with,comma"]])),
        "doc": maybe('{"a": [1, 2]}'),
        "blob": maybe(bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 70)))),
        "ratio": maybe(rng.uniform(-1e6, 1e6)),
    }


def test_envelope_encoding_matches_fastavro_byte_for_byte_on_random_rows():
    rng = random.Random(20261125)
    schema = value_schema("crm.public.things", COLUMNS)
    encode = compile_encoder(schema)
    source = {"version": "0.1.0", "connector": "psmesh-postgresql", "name": "crm", "ts_ms": 1, "snapshot": "false",
              "db": "crm", "schema": "public", "table": "things", "txId": 7, "lsn": 2**40, "sequence": None}
    for i in range(500):
        before = _random_row(rng, nullable=True) if i % 3 else None
        after = _random_row(rng, nullable=True) if i % 5 else None
        record = {"before": before, "after": after, "source": source, "op": rng.choice("cudrt"),
                  "ts_ms": rng.randint(0, 2**41), "unchanged_toasted": rng.choice([[], ["doc"], ["doc", "name"]])}
        assert encode(record) == _fastavro(schema, record), f"row {i}"


def test_key_encoding_carries_the_confluent_prefix():
    schema = key_schema("crm.public.things", COLUMNS)
    encode = compile_encoder(schema, prefix=b"\x00\x00\x00\x00\x2a")
    assert encode({"id": 5}) == b"\x00\x00\x00\x00\x2a" + _fastavro(schema, {"id": 5})


def test_a_decimal_with_more_places_than_its_scale_is_refused_not_rounded():
    schema = {"type": "record", "name": "R", "fields": [{"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}}]}
    encode = compile_encoder(schema)
    assert encode({"d": Decimal("1.5")}) == _fastavro(schema, {"d": Decimal("1.50")})
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        encode({"d": Decimal("1.005")})
    with pytest.raises(ValueError, match="more than 5 digits"):
        encode({"d": Decimal("1000.00")})
    with pytest.raises(ValueError, match="cannot hold NaN"):
        encode({"d": Decimal("NaN")})


@pytest.mark.parametrize("precision, scale", [(38, 2), (38, 0), (38, 10), (30, 29), (60, 4)])
def test_a_decimal_wider_than_28_digits_is_encoded_exactly_as_fastavro_encodes_it(precision, scale):
    # Python's default decimal context keeps 28 digits: arithmetic in it rounds a numeric(38,2) value silently.
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "d", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}]}]}
    encode = compile_encoder(schema)
    rng = random.Random(precision * 100 + scale)
    widest = 10**precision - 1
    values = [widest, -widest, 10**(precision - 1), -(10**(precision - 1)) - 1, 123456789012345678901234567890123,
              *(rng.randint(-widest, widest) for _ in range(200))]
    for unscaled in (v for v in values if abs(v) <= widest):
        value = Decimal(f"{unscaled}E-{scale}")  # exact, as psycopg and the converters build them
        assert encode({"d": value}) == _fastavro(schema, {"d": value}), value
    if (precision, scale) == (38, 2):
        value = Decimal("1234567890123456789012345678901.23")
        encoded = encode({"d": value})
        assert encoded == _fastavro(schema, {"d": value})
        assert fastavro.schemaless_reader(io.BytesIO(encoded), fastavro.parse_schema(schema), None)["d"] == value
    with pytest.raises(ValueError, match=f"more than {scale} decimal places"):
        encode({"d": Decimal(f"{widest // 10}E-{scale + 1}")})
    with pytest.raises(ValueError, match=f"more than {precision} digits"):
        encode({"d": Decimal(f"{widest + 1}E-{scale}")})


def test_a_decimal_seen_before_encodes_as_fastavro_does_whatever_its_exponent_and_a_float_is_still_refused(
        monkeypatch):
    import streams.avrocodegen as avrocodegen

    monkeypatch.setattr(avrocodegen, "_KNOWN_DECIMALS", 3)  # a memory that fills, to start over, within the test
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}}]}
    encode = compile_encoder(schema)
    values = ["7.50", "7.5", "7.500", "-0.01", "40", "40.00", "0", "-0.00", "-128.00", "7.50", "-0.01"]
    for text in values * 2:
        assert encode({"d": Decimal(text)}) == _fastavro(schema, {"d": Decimal(text).quantize(Decimal("0.01"))}), text
    encode({"d": Decimal("7.50")})
    with pytest.raises(Exception):  # equal to the 7.50 just encoded, but a float: refused, never looked up
        encode({"d": 7.5})
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        encode({"d": Decimal("7.505")})


def test_unions_beyond_null_and_one_type_are_left_to_fastavro():
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": ["null", "int", "string"]}]}
    with pytest.raises(UnsupportedSchema):
        compile_encoder(schema)


def test_an_unconstrained_numeric_is_carried_as_its_exact_text():
    from streams.envelope import avro_type

    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": ["null", avro_type(1700, -1)]},
                                                         {"name": "m", "type": ["null", avro_type(1700, -1)]}]}
    encoded = compile_encoder(schema)({"n": Decimal("1.50"), "m": Decimal("1.5")})
    decoded = fastavro.schemaless_reader(io.BytesIO(encoded), fastavro.parse_schema(schema))
    assert decoded == {"n": "1.50", "m": "1.5"}
    # as PostgreSQL writes them, not in Python's exponent form ('1E-7', '0E-8', '1.2E+3')
    for text in ("0.0000001", "0.00000000", "1200", "-0.000050", "NaN", "Infinity"):
        encoded = compile_encoder(schema)({"n": Decimal(text), "m": None})
        assert fastavro.schemaless_reader(io.BytesIO(encoded), fastavro.parse_schema(schema))["n"] == text
    # other values a snapshot loads for a text column keep their str()
    import uuid

    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    encoded = compile_encoder(schema)({"n": value, "m": None})
    assert fastavro.schemaless_reader(io.BytesIO(encoded), fastavro.parse_schema(schema))["n"] == str(value)
