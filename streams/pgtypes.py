"""PostgreSQL text values (as pgoutput sends them) to Python values, by type oid.

pgoutput sends each column in its type's *text output* form. Which Python
value each type becomes:

==========================================  ====================================
PostgreSQL type (oid)                       Python value
==========================================  ====================================
int2 (21), int4 (23), int8 (20), oid (26)   ``int``
numeric (1700)                              ``decimal.Decimal``, exact, with the
                                            scale as sent (``'12.30'`` keeps two
                                            places). ``NaN``, ``Infinity`` and
                                            ``-Infinity`` become the Decimal
                                            specials (``Decimal('NaN')`` etc.);
                                            the Avro layer must refuse them,
                                            because an Avro decimal cannot hold
                                            them (``Decimal.is_finite()``).
float4 (700), float8 (701)                  ``float`` (NaN/±Infinity included)
bool (16)                                   ``True`` / ``False`` from ``t`` / ``f``
text (25), varchar (1043), name (19),       ``str``; ``bpchar`` keeps the blank
bpchar (1042), "char" (18)                  padding PostgreSQL sends (``'EU '``)
json (114), jsonb (3802)                    ``str`` (the JSON text as sent)
uuid (2950)                                 ``str`` (canonical lower-case form)
date (1082)                                 ``datetime.date``
timestamptz (1184)                          aware ``datetime`` in UTC, µs; any
                                            offset the session TimeZone gives is
                                            read (``+00``, ``+05:30``, ``-03``,
                                            ``-03:06:28``)
timestamp (1114)                            naive ``datetime``
time (1083)                                 naive ``datetime.time``
bytea (17)                                  ``bytes`` (hex output format)
arrays of the above (text[] 1009,           ``list`` (one dimension; a value of
varchar[] 1015, int4[] 1007, int8[] 1016,   several is a ValueConversionError,
                                            as the Avro type has one); NULL elements are
numeric[] 1231, ... see ``_ARRAY_ELEMENT``)  ``None``; explicit lower bounds
                                            (``[0:1]={...}``) are dropped
any other oid                               ``str``, unchanged, with no error
                                            (enums, intervals, domains, ranges,
                                            arrays of types not listed, ...)
==========================================  ====================================

Contracts:

* The replication session must run with ``DateStyle=ISO`` and
  ``bytea_output=hex`` (PostgreSQL's defaults); TimeZone may be anything.
* Values that Python cannot represent faithfully raise
  :class:`~streams.exceptions.ValueConversionError`, never a guessed value:
  ``infinity`` / ``-infinity`` dates and timestamps, BC dates, years after
  9999, malformed text. The error names the type and the reason, never the
  value (it is on the exception's ``text`` attribute for the dead-letter
  record).
* Converters take the text of a non-NULL value. NULL (``None``) and
  :data:`~streams.pgoutput.UNCHANGED_TOAST` are the caller's to pass through;
  :class:`RowConverter` does that for a whole tuple.
* Look converters up once per Relation message (:func:`converter_for`,
  :class:`RowConverter`), not once per row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from streams.exceptions import ValueConversionError

__all__ = [
    "Converter",
    "RowConverter",
    "char_length",
    "array_element",
    "converter_for",
    "numeric_precision_scale",
    "parse_array",
]

Converter = Callable[[str], Any]

# Type oids (pg_type.dat); stable across PostgreSQL versions.
BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 18, 19, 20, 21, 23, 25, 26
JSON, FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE, TIME = 114, 700, 701, 1042, 1043, 1082, 1083
TIMESTAMP, TIMESTAMPTZ, NUMERIC, UUID, JSONB = 1114, 1184, 1700, 2950, 3802

_UTC = timezone.utc
_VARHDRSZ = 4


# --- type modifiers -----------------------------------------------------------


def numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    """``(precision, scale)`` of a ``numeric(p,s)`` column, ``None`` if unconstrained (-1).

    ``typmod = ((p << 16) | s) + 4``. Since PostgreSQL 15 the scale is an
    11-bit signed field (``numeric(5,-2)`` rounds to hundreds; ``numeric(3,5)``
    has scale > precision), so it is sign-extended as PostgreSQL's
    ``NUMERIC_TYPMOD_SCALE`` does; for the usual 0 <= s <= p this equals
    ``(typmod - 4) & 0xffff``.
    """
    if typmod < _VARHDRSZ:
        return None
    value = typmod - _VARHDRSZ
    return (value >> 16) & 0xFFFF, ((value & 0x7FF) ^ 1024) - 1024


def char_length(typmod: int) -> int | None:
    """Declared length n of ``char(n)`` / ``varchar(n)``; ``None`` if unconstrained (-1)."""
    return typmod - _VARHDRSZ if typmod >= _VARHDRSZ else None


# --- scalar converters --------------------------------------------------------

_BOOLS = {"t": True, "f": False}


def _bool(text: str) -> bool:
    try:
        return _BOOLS[text]
    except KeyError:
        raise ValueConversionError("boolean", "expected 't' or 'f'", text) from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueConversionError("integer", "not an integer", text) from None


def _numeric(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueConversionError("numeric", "not a number", text) from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueConversionError("double precision", "not a number", text) from None


def _out_of_range(type_name: str, text: str) -> ValueConversionError:
    """Why an ISO date/time text did not parse: say which limit it hit."""
    lowered = text.lower()
    if "infinity" in lowered:
        reason = "infinity has no Python equivalent"
    elif lowered.endswith(" bc"):
        reason = "dates before year 1 (BC) are outside Python's range"
    elif re.match(r"\d{5,}-", text):
        reason = "years after 9999 are outside Python's range"
    else:
        reason = "not in ISO format (the session must use DateStyle=ISO)"
    return ValueConversionError(type_name, reason, text)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _out_of_range("date", text) from None


def _timestamptz(text: str) -> datetime:
    # datetime.fromisoformat (3.11+) reads PostgreSQL's ISO output, including
    # offsets of hours only ('-03') and with seconds ('-03:06:28', local mean
    # time before 1900 in some zones) and 1..6 fraction digits.
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _out_of_range("timestamp with time zone", text) from None
    tz = value.tzinfo
    if tz is _UTC:
        return value
    if tz is None:
        raise ValueConversionError("timestamp with time zone", "no UTC offset in text", text)
    try:
        return value.astimezone(_UTC)
    except OverflowError:
        raise ValueConversionError("timestamp with time zone", "outside Python's range in UTC", text) from None


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _out_of_range("timestamp without time zone", text) from None
    if value.tzinfo is not None:
        raise ValueConversionError("timestamp without time zone", "unexpected UTC offset", text)
    return value


def _time(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        # '24:00:00' is a valid PostgreSQL time with no Python equivalent.
        raise ValueConversionError("time", "not a time Python can hold (e.g. 24:00:00)", text) from None


def _bytea(text: str) -> bytes:
    if not text.startswith("\\x"):
        raise ValueConversionError("bytea", "not in hex output format (the session must use bytea_output=hex)", text)
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise ValueConversionError("bytea", "malformed hex", text) from None


_SCALARS: dict[int, Converter] = {
    BOOL: _bool,
    BYTEA: _bytea,
    INT2: _int,
    INT4: _int,
    INT8: _int,
    OID: _int,
    NUMERIC: _numeric,
    FLOAT4: _float,
    FLOAT8: _float,
    DATE: _date,
    TIME: _time,
    TIMESTAMP: _timestamp,
    TIMESTAMPTZ: _timestamptz,
    # Already the right value: the text as sent.
    TEXT: str,
    VARCHAR: str,
    BPCHAR: str,
    NAME: str,
    CHAR: str,
    JSON: str,
    JSONB: str,
    UUID: str,
}

# Array type oid -> element type oid (pg_type.typelem).
_ARRAY_ELEMENT: dict[int, int] = {
    1000: BOOL,
    1001: BYTEA,
    1002: CHAR,
    1003: NAME,
    1005: INT2,
    1007: INT4,
    1009: TEXT,
    1014: BPCHAR,
    1015: VARCHAR,
    1016: INT8,
    1021: FLOAT4,
    1022: FLOAT8,
    1028: OID,
    1115: TIMESTAMP,
    1182: DATE,
    1183: TIME,
    1185: TIMESTAMPTZ,
    1231: NUMERIC,
    199: JSON,
    2951: UUID,
    3807: JSONB,
}


# --- arrays -------------------------------------------------------------------

# Optional explicit bounds, then the braces: '[0:1][1:2]={...}'.
_BOUNDS = re.compile(r"(?:\[-?\d+:-?\d+\])+=")
# One-dimensional arrays whose elements need no quoting (the common case:
# '{aws,gcp}', '{1,-2,NULL}') are split on commas.
_SIMPLE = re.compile(r"\{(?:[^{},\"\\\s]+(?:,[^{},\"\\\s]+)*)?\}")
# One-dimensional arrays as array_out prints them: array_out quotes an
# element when it is empty, equals NULL (any case) or holds braces, the
# delimiter, quotes, backslashes or white space, and inside quotes escapes
# only '"' and '\'. _ONE_DIM validates the whole literal, _ITEM then finds
# the elements (quoted text, or a bare run up to the next comma).
# (Quoted text is matched as an unrolled loop, "[^"\\]*(?:\\.[^"\\]*)*":
# Python's re is several times faster on it than on "(?:[^"\\]|\\.)*".)
_QUOTED = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_BARE = r'[^{},"\\\s]+'
_ONE_DIM = re.compile(rf"\{{((?:{_QUOTED}|{_BARE})(?:,(?:{_QUOTED}|{_BARE}))*)\}}", re.DOTALL)
_ITEM = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"|([^,]+)', re.DOTALL)
# Anything else (several dimensions; white space or backslash escapes in
# unquoted elements, which array_in accepts) goes through the tokenizer.
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<open>\{)
      | (?P<close>\})
      | (?P<comma>,)
      | "(?P<quoted>[^"\\]*(?:\\.[^"\\]*)*)"
      | (?P<bare>(?:[^{},"\\\s]|\\.)+(?:\s+(?:[^{},"\\\s]|\\.)+)*)
    )\s*""",
    re.VERBOSE | re.DOTALL,
)
# Unquoted NULL in any case is a NULL element (array_in compares case-blind).
_NULLS = frozenset(
    "".join(c.upper() if bit & (1 << i) else c for i, c in enumerate("null")) for bit in range(16)
)


def _unescape(text: str) -> str:
    """Drop each escaping backslash, keep the character it escapes."""
    if "\\" not in text:
        return text
    # str.find beats re.sub here (re.sub re-parses its template on each call).
    parts = []
    start = 0
    while (slash := text.find("\\", start)) >= 0:
        parts.append(text[start:slash])
        parts.append(text[slash + 1 : slash + 2])
        start = slash + 2
    parts.append(text[start:])
    return "".join(parts)


def parse_array(text: str, element: Converter = str) -> list:
    """Parse PostgreSQL's array text form into (nested) lists.

    ``element`` converts each non-NULL element's text. Quoted elements keep
    commas, braces, spaces and the word NULL as data; unquoted ``NULL`` (any
    case) is ``None``; ``{}`` is ``[]``. Explicit lower bounds are dropped.
    Reads everything array_out prints, plus array_in's looser forms (white
    space around elements, backslash escapes outside quotes); quotes in the
    middle of an element (``{a"b"}``, accepted by array_in, never printed)
    are refused as malformed.
    """
    if _SIMPLE.fullmatch(text):
        if len(text) == 2:
            return []
        return [None if item in _NULLS else element(item) for item in text[1:-1].split(",")]
    one_dim = _ONE_DIM.fullmatch(text)
    if one_dim is not None:
        return [
            (None if bare in _NULLS else element(bare)) if bare else element(_unescape(quoted))
            for quoted, bare in _ITEM.findall(one_dim[1])
        ]
    bounds = _BOUNDS.match(text)
    pos = bounds.end() if bounds else 0
    end = len(text)
    root: list = []
    stack: list[list] = []
    current = root
    expect_item = True  # after '{' or ',': an element, or '}' right after '{'
    started = False
    token = _TOKEN
    try:
        while pos < end:
            match = token.match(text, pos)
            if match is None:
                raise ValueError(f"unexpected character at {pos}")
            pos = match.end()
            kind = match.lastgroup
            if kind == "open":
                if started and not stack:
                    raise ValueError("text after the closing brace")
                if started and not expect_item:
                    raise ValueError("missing delimiter")
                child: list = []
                if started:
                    current.append(child)
                    stack.append(current)
                else:
                    stack.append(root)
                    child = root
                    started = True
                current = child
                expect_item = True
            elif kind == "close":
                if not stack:
                    raise ValueError("unbalanced closing brace")
                if expect_item and current:
                    raise ValueError("element missing before '}'")
                current = stack.pop()
                expect_item = False
            elif kind == "comma":
                if expect_item or not stack:
                    raise ValueError("element missing before ','")
                expect_item = True
            else:
                if not expect_item or not stack:
                    raise ValueError("missing delimiter or braces")
                if kind == "quoted":
                    current.append(element(_unescape(match["quoted"])))
                else:
                    bare = match["bare"]
                    if bare in _NULLS:
                        current.append(None)
                    else:
                        current.append(element(_unescape(bare)))
                expect_item = False
        if not started or stack:
            raise ValueError("unbalanced braces")
    except ValueError as exc:
        if isinstance(exc, ValueConversionError):
            raise
        raise ValueConversionError("array", f"malformed array literal: {exc}", text) from None
    return root


def _array_of(element: Converter) -> Converter:
    def convert(text: str) -> list:
        values = parse_array(text, element)
        # The column's Avro type is a one-dimensional array (the catalog does not say how many
        # dimensions a value will have); a value of several cannot be written as one.
        if any(isinstance(v, list) for v in values):
            raise ValueConversionError("array", "several dimensions; change events carry one-dimensional "
                                       "arrays (store one dimension, or the value as text or jsonb)", text)
        return values

    return convert


# --- registry -----------------------------------------------------------------


def array_element(type_oid: int) -> int | None:
    """The element type oid of an array type this module converts, else None.

    The Avro mapping (:mod:`streams.envelope`) uses the same table, so a column
    is an array in its schema exactly when it is a list in its values.
    """
    return _ARRAY_ELEMENT.get(type_oid)


@lru_cache(maxsize=1024)
def converter_for(type_oid: int, typmod: int = -1) -> Converter:
    """The converter for a column of type ``type_oid`` (text in, Python value out).

    ``typmod`` does not change the conversion of any supported type (numeric
    text already carries its scale; bpchar is padded by the server); it is
    part of the key so that typmod-dependent conversions can be added without
    changing callers. Unknown oids get ``str``: the value passes through as
    the text PostgreSQL sent, without error.
    """
    scalar = _SCALARS.get(type_oid)
    if scalar is not None:
        return scalar
    element_oid = _ARRAY_ELEMENT.get(type_oid)
    if element_oid is not None:
        return _array_of(_SCALARS[element_oid])
    return str


class RowConverter:
    """Converts whole TupleData rows of one Relation; build one per Relation message.

    ``None`` (NULL), ``UNCHANGED_TOAST`` and binary (``bytes``) values pass
    through untouched; every ``str`` value goes through its column's converter.
    """

    __slots__ = ("_converters",)

    def __init__(self, columns: Sequence[Any]) -> None:
        """``columns``: objects with ``type_oid`` and ``type_modifier`` (pgoutput RelationColumn)."""
        self._converters = tuple(converter_for(c.type_oid, c.type_modifier) for c in columns)

    @property
    def converters(self) -> tuple[Converter, ...]:
        return self._converters

    def __call__(self, values: Sequence[Any]) -> tuple:
        if len(values) != len(self._converters):
            raise ValueError(f"tuple has {len(values)} columns, relation has {len(self._converters)}")
        return tuple([convert(v) if v.__class__ is str else v for convert, v in zip(self._converters, values)])
