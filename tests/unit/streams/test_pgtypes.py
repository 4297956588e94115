"""PostgreSQL text output to Python values.

The literal inputs are what PostgreSQL 15 prints (checked with psql against
the project's server with DateStyle ISO), including the forms array_out and
timestamptz_out produce for awkward values.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest

from streams.exceptions import ValueConversionError
from streams.pgoutput import UNCHANGED_TOAST
from streams.pgtypes import (
    RowConverter,
    char_length,
    converter_for,
    numeric_precision_scale,
    parse_array,
)

UTC = timezone.utc
INT2, INT4, INT8, TEXT, BOOL, NUMERIC, DATE, TIMESTAMPTZ, TIMESTAMP = 21, 23, 20, 25, 16, 1700, 1082, 1184, 1114
VARCHAR, BPCHAR, JSON, JSONB, UUID = 1043, 1042, 114, 3802, 2950
TEXT_ARRAY, VARCHAR_ARRAY, INT4_ARRAY, INT8_ARRAY, NUMERIC_ARRAY = 1009, 1015, 1007, 1016, 1231


def convert(oid: int, text: str, typmod: int = -1):
    return converter_for(oid, typmod)(text)


# --- integers, booleans, text-like ------------------------------------------------


@pytest.mark.parametrize("oid", [INT2, INT4, INT8])
def test_integers_become_int(oid):
    assert convert(oid, "-32768") == -32768
    assert convert(oid, "0") == 0


def test_bigint_keeps_all_64_bits():
    assert convert(INT8, "9223372036854775807") == 2**63 - 1
    assert convert(INT8, "-9223372036854775808") == -(2**63)


def test_malformed_integer_is_a_conversion_error_without_the_value_in_the_message():
    with pytest.raises(ValueConversionError) as caught:
        convert(INT8, "secret-42")
    assert "secret" not in str(caught.value) and caught.value.text == "secret-42"
    assert caught.value.type_name == "integer"


def test_boolean_text_t_and_f_become_true_and_false():
    assert convert(BOOL, "t") is True
    assert convert(BOOL, "f") is False
    with pytest.raises(ValueConversionError, match="expected 't' or 'f'"):
        convert(BOOL, "true")


@pytest.mark.parametrize("oid", [TEXT, VARCHAR, JSON, JSONB, UUID])
def test_text_like_types_pass_through_as_str(oid):
    assert convert(oid, ' {"a": 1} ') == ' {"a": 1} '


def test_bpchar_keeps_the_blank_padding_postgresql_sends():
    assert convert(BPCHAR, "EU ", typmod=7) == "EU "


def test_unknown_type_oid_falls_back_to_str_without_error():
    converter = converter_for(16819, -1)  # e.g. an enum
    assert converter is str
    assert converter("won") == "won"
    assert converter_for(3904)("[1,5)") == "[1,5)"  # int4range: not converted, passed through


# --- numeric ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "exponent"),
    [("1234567.89", -2), ("0.10", -2), ("-0.01", -2), ("100.00", -2), ("12", 0), ("0.00000000000000000001", -20)],
)
def test_numeric_becomes_an_exact_decimal_that_keeps_the_sent_scale(text, exponent):
    value = convert(NUMERIC, text, typmod=917510)
    assert value == Decimal(text) and format(value, "f") == text
    assert value.as_tuple().exponent == exponent


def test_numeric_money_sums_are_exact_to_the_cent():
    cents = [convert(NUMERIC, "0.10") for _ in range(10)]
    assert sum(cents) == Decimal("1.00")
    assert convert(NUMERIC, "12345678901234567890.123") == Decimal("12345678901234567890.123")


@pytest.mark.parametrize(("text", "check"), [("NaN", "is_nan"), ("Infinity", "is_infinite"), ("-Infinity", "is_infinite")])
def test_numeric_specials_become_decimal_specials_not_errors(text, check):
    value = convert(NUMERIC, text)
    assert getattr(value, check)() and not value.is_finite()


def test_malformed_numeric_is_a_conversion_error():
    with pytest.raises(ValueConversionError, match="numeric"):
        convert(NUMERIC, "12,5")


@pytest.mark.parametrize(
    ("declared", "typmod", "expected"),
    [
        # atttypmod values read from pg_attribute on PostgreSQL 15.
        ("numeric(14,2)", 917510, (14, 2)),
        ("numeric(5,2)", 327686, (5, 2)),
        ("numeric(10,2)", 655366, (10, 2)),
        ("numeric(1000,0)", 65536004, (1000, 0)),
        ("numeric(5,-2)", 329730, (5, -2)),  # PostgreSQL 15: negative scale
        ("numeric(3,5)", 196617, (3, 5)),  # PostgreSQL 15: scale > precision
        ("numeric", -1, None),
    ],
)
def test_numeric_precision_and_scale_come_from_the_type_modifier(declared, typmod, expected):
    assert numeric_precision_scale(typmod) == expected


def test_char_length_comes_from_the_type_modifier():
    assert char_length(7) == 3  # char(3)
    assert char_length(16) == 12  # varchar(12)
    assert char_length(-1) is None  # varchar, bpchar without length


# --- dates and times --------------------------------------------------------------------


def test_date_becomes_a_date():
    assert convert(DATE, "2026-11-30") == date(2026, 11, 30)
    assert convert(DATE, "2000-02-29") == date(2000, 2, 29)
    assert convert(DATE, "0001-01-01") == date(1, 1, 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("infinity", "infinity"),
        ("-infinity", "infinity"),
        ("0044-03-15 BC", "BC"),
        ("20000-01-01", "after 9999"),
        ("11/30/2026", "DateStyle=ISO"),
    ],
)
def test_dates_python_cannot_hold_are_conversion_errors_saying_why(text, reason):
    with pytest.raises(ValueConversionError, match=reason):
        convert(DATE, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25 10:11:12.123456+00", datetime(2026, 11, 25, 10, 11, 12, 123456, tzinfo=UTC)),
        ("2026-11-25 15:41:12.123456+05:30", datetime(2026, 11, 25, 10, 11, 12, 123456, tzinfo=UTC)),
        ("2026-11-25 07:11:12.123456-03", datetime(2026, 11, 25, 10, 11, 12, 123456, tzinfo=UTC)),
        ("2026-11-25 21:56:12+11:45", datetime(2026, 11, 25, 10, 11, 12, tzinfo=UTC)),
        ("2026-07-01 20:59:59.5-03", datetime(2026, 7, 1, 23, 59, 59, 500000, tzinfo=UTC)),
        ("2026-01-01 00:00:00.000001+00", datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        # Local mean time before 1900 has offsets with seconds.
        ("1899-12-31 20:53:32-03:06:28", datetime(1900, 1, 1, tzinfo=UTC)),
        ("1900-01-01 05:21:10+05:21:10", datetime(1900, 1, 1, tzinfo=UTC)),
    ],
)
def test_timestamptz_becomes_an_aware_utc_datetime_from_any_offset(text, expected):
    value = convert(TIMESTAMPTZ, text)
    assert value == expected
    assert value.tzinfo is UTC and value.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("infinity", "infinity"),
        ("-infinity", "infinity"),
        ("0044-03-15 10:00:00+00 BC", "BC"),
        ("20000-01-01 00:00:00+00", "after 9999"),
        ("0001-01-01 00:00:00+05:30", "outside Python's range in UTC"),
        ("2026-11-25 10:11:12", "no UTC offset"),
        ("Wed Nov 25 10:11:12 2026 UTC", "DateStyle=ISO"),
    ],
)
def test_timestamptz_python_cannot_hold_is_a_conversion_error(text, reason):
    with pytest.raises(ValueConversionError, match=reason):
        convert(TIMESTAMPTZ, text)


def test_timestamp_without_time_zone_becomes_a_naive_datetime():
    assert convert(TIMESTAMP, "2026-12-31 23:59:59.999999") == datetime(2026, 12, 31, 23, 59, 59, 999999)
    assert convert(TIMESTAMP, "2026-11-25 10:11:12").tzinfo is None
    with pytest.raises(ValueConversionError, match="unexpected UTC offset"):
        convert(TIMESTAMP, "2026-11-25 10:11:12+00")


def test_time_and_bytea_convert_and_refuse_what_they_cannot_hold():
    assert convert(1083, "10:11:12.5") == time(10, 11, 12, 500000)
    with pytest.raises(ValueConversionError, match="24:00:00"):
        convert(1083, "24:00:00")
    assert convert(17, "\\x00ff10") == b"\x00\xff\x10"
    with pytest.raises(ValueConversionError, match="bytea_output=hex"):
        convert(17, "\\000")


# --- arrays ------------------------------------------------------------------------------


def test_empty_array_is_an_empty_list():
    assert convert(TEXT_ARRAY, "{}") == []


def test_text_array_with_every_kind_of_quoted_element():
    # As array_out prints ARRAY['aws','data engineering','a,b','x"y','back\slash',NULL,'NULL','{braces}','',' lead']
    literal = '{aws,"data engineering","a,b","x\\"y","back\\\\slash",NULL,"NULL","{braces}",""," lead"}'
    assert convert(TEXT_ARRAY, literal) == [
        "aws", "data engineering", "a,b", 'x"y', "back\\slash", None, "NULL", "{braces}", "", " lead",
    ]  # fmt: skip


def test_quoted_null_in_any_case_is_text_and_unquoted_null_in_any_case_is_none():
    assert convert(TEXT_ARRAY, '{"null","NULL",NULL,null}') == ["null", "NULL", None, None]


def test_array_elements_keep_tabs_newlines_and_leading_or_trailing_spaces_inside_quotes():
    assert convert(TEXT_ARRAY, '{"tab\there","nl\nx"," s "}') == ["tab\there", "nl\nx", " s "]


def test_array_of_bpchar_keeps_padding_inside_quotes():
    assert convert(1014, '{"x  ",abc}') == ["x  ", "abc"]


def test_varchar_array_is_a_list_of_str():
    assert convert(VARCHAR_ARRAY, "{ann@example.com,b}") == ["ann@example.com", "b"]


def test_integer_arrays_convert_their_elements_and_keep_null_elements():
    assert convert(INT4_ARRAY, "{1,-2,NULL}") == [1, -2, None]
    assert convert(INT8_ARRAY, "{9223372036854775807}") == [2**63 - 1]


def test_numeric_array_elements_are_exact_decimals():
    assert convert(NUMERIC_ARRAY, "{1.50,NaN,-0.001}")[0] == Decimal("1.50")
    value = convert(NUMERIC_ARRAY, "{1.50,NaN,-0.001}")
    assert str(value[0]) == "1.50" and value[1].is_nan() and value[2] == Decimal("-0.001")


def test_timestamptz_array_elements_are_quoted_and_converted():
    assert convert(1185, '{"2026-11-25 15:41:12+05:30",NULL}') == [datetime(2026, 11, 25, 10, 11, 12, tzinfo=UTC), None]


def test_multidimensional_array_text_parses_into_nested_lists():
    assert parse_array("{{1,2},{3,4}}", int) == [[1, 2], [3, 4]]
    assert parse_array('{{"a b",NULL},{c,"}"}}') == [["a b", None], ["c", "}"]]


def test_a_multidimensional_array_value_is_refused_with_a_clear_error_not_a_guess():
    # The column's Avro type is a one-dimensional array: nested lists cannot be written as it.
    for oid, text in ((INT4_ARRAY, "{{1,2},{3,4}}"), (TEXT_ARRAY, '{{"a b",NULL},{c,"}"}}')):
        with pytest.raises(ValueConversionError, match="several dimensions") as info:
            convert(oid, text)
        assert info.value.text == text


def test_explicit_lower_bounds_are_dropped():
    assert convert(INT4_ARRAY, "[0:1]={1,2}") == [1, 2]
    assert parse_array("[-1:0][1:1]={{1},{2}}", int) == [[1], [2]]


def test_array_input_forms_that_array_out_never_prints_are_still_read_as_array_in_reads_them():
    assert parse_array("{a b , c}") == ["a b", "c"]
    assert parse_array("{a\\,b}") == ["a,b"]


@pytest.mark.parametrize("literal", ["{", "{a,}", "{,a}", "{a}}", "a", '{a"b"}', "{a}{b}", "{{a}b}", ""])
def test_malformed_array_literal_is_a_conversion_error(literal):
    with pytest.raises(ValueConversionError, match="malformed array literal"):
        parse_array(literal)


def test_array_element_that_cannot_convert_is_a_conversion_error_of_its_type():
    with pytest.raises(ValueConversionError, match="integer"):
        convert(INT4_ARRAY, "{1,x}")


def test_array_of_an_unknown_element_type_falls_back_to_its_text():
    assert converter_for(16820)("{open,won}") == "{open,won}"  # e.g. an enum array


# --- registry and rows ------------------------------------------------------------------


def test_converter_lookup_is_cached_per_type_and_typmod():
    assert converter_for(TEXT_ARRAY, -1) is converter_for(TEXT_ARRAY, -1)


def test_row_converter_passes_null_unchanged_toast_and_binary_through():
    columns = [SimpleNamespace(type_oid=oid, type_modifier=-1) for oid in (INT8, NUMERIC, TEXT, BOOL, TEXT_ARRAY, 17)]
    row = RowConverter(columns)
    assert row(("1", "0.10", UNCHANGED_TOAST, None, "{a}", b"\x01")) == (
        1, Decimal("0.10"), UNCHANGED_TOAST, None, ["a"], b"\x01",
    )  # fmt: skip
    with pytest.raises(ValueError, match="tuple has 1 columns, relation has 6"):
        row(("1",))
