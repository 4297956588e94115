"""Avro binary encoders generated per record schema, for the processors' output records.

fastavro's ``schemaless_writer`` took about 40 µs per view row here (most of
it in the logical types: seven decimals and a date in a resource_week row),
and the worker publishes about one such record for every two change events.
:func:`compile_writer` builds, once per schema, a function that writes the
same bytes in a few microseconds, for the types the output schemas use:
null, boolean, int, long, string, bytes, ``decimal`` (bytes), ``date``,
``timestamp-micros`` and ``timestamp-millis`` (timezone-aware datetimes),
records, arrays, and unions of null with one other type.

It is an accelerator only: a schema with anything else gets no writer
(None), and a value the writer does not take exactly as fastavro would (a
naive datetime, an int where a Decimal is expected, a missing field, a
decimal that does not fit its scale) raises, and the caller then encodes
the record with fastavro, which writes it or raises its own error.
tests/unit/test_avrowrite.py compares both byte for byte.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable

Writer = Callable[[bytearray, Any], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


class Unsupported(Exception):
    """A schema this module does not write: the caller keeps fastavro for it."""


def _varint(buf: bytearray, value: int) -> None:
    n = (value << 1) ^ (value >> 63)
    while n > 0x7F:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)


def _long(buf: bytearray, value: Any) -> None:
    if type(value) is not int and type(value) is not bool:
        raise TypeError(f"not an integer: {value!r}")
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise OverflowError(value)
    _varint(buf, value)


def _int(buf: bytearray, value: Any) -> None:
    if type(value) is not int and type(value) is not bool:
        raise TypeError(f"not an integer: {value!r}")
    if not _INT_MIN <= value <= _INT_MAX:
        raise OverflowError(value)
    _varint(buf, value)


def _null(buf: bytearray, value: Any) -> None:
    if value is not None:
        raise TypeError(f"not null: {value!r}")


def _boolean(buf: bytearray, value: Any) -> None:
    if type(value) is not bool:
        raise TypeError(f"not a boolean: {value!r}")
    buf.append(1 if value else 0)


def _string(buf: bytearray, value: Any) -> None:
    if type(value) is not str:
        raise TypeError(f"not a string: {value!r}")
    data = value.encode()
    _varint(buf, len(data))
    buf += data


def _bytes(buf: bytearray, value: Any) -> None:
    if type(value) is not bytes:
        raise TypeError(f"not bytes: {value!r}")
    _varint(buf, len(value))
    buf += value


def _decimal(precision: int, scale: int) -> Writer:
    def write(buf: bytearray, value: Any) -> None:
        if type(value) is not Decimal:
            raise TypeError(f"not a Decimal: {value!r}")
        sign, digits, exp = value.as_tuple()
        if len(digits) > precision:
            raise ValueError("precision")
        delta = exp + scale  # a NaN or infinity has a str exponent: TypeError
        if delta < 0:
            raise ValueError("scale")
        unscaled = 0
        for digit in digits:
            unscaled = unscaled * 10 + digit
        unscaled *= 10**delta
        size = (unscaled.bit_length() + 8) // 8
        data = (-unscaled if sign else unscaled).to_bytes(size, "big", signed=True)
        _varint(buf, size)
        buf += data

    return write


def _date(buf: bytearray, value: Any) -> None:
    if type(value) is not date:
        raise TypeError(f"not a date: {value!r}")
    _varint(buf, value.toordinal() - _EPOCH_ORDINAL)


def _timestamp(per_second: int) -> Writer:
    def write(buf: bytearray, value: Any) -> None:
        if type(value) is not datetime or value.tzinfo is None:
            raise TypeError(f"not a timezone-aware datetime: {value!r}")  # fastavro reads naive ones as local time
        delta = value - _EPOCH
        whole = (delta.days * 86400 + delta.seconds) * per_second
        _long(buf, whole + (delta.microseconds if per_second == 1_000_000 else delta.microseconds // 1000))

    return write


def _union(branches: list[Any]) -> Writer:
    if len(branches) != 2 or "null" not in branches:
        raise Unsupported(f"union {branches!r}")
    null_index = branches.index("null")
    other = _writer(branches[1 - null_index])
    other_index = 1 - null_index

    def write(buf: bytearray, value: Any) -> None:
        if value is None:
            buf.append(null_index << 1)
        else:
            buf.append(other_index << 1)
            other(buf, value)

    return write


def _record(schema: dict[str, Any]) -> Writer:
    fields = [(f["name"], _writer(f["type"])) for f in schema["fields"]]

    def write(buf: bytearray, value: Any) -> None:
        for name, field in fields:
            field(buf, value[name])  # a missing field: KeyError, and fastavro applies defaults or refuses

    return write


def _array(schema: dict[str, Any]) -> Writer:
    items = _writer(schema["items"])

    def write(buf: bytearray, value: Any) -> None:
        if type(value) is not list:
            raise TypeError(f"not a list: {value!r}")
        if value:
            _varint(buf, len(value))
            for item in value:
                items(buf, item)
        buf.append(0)

    return write


_PRIMITIVES: dict[str, Writer] = {"null": _null, "boolean": _boolean, "int": _int, "long": _long,
                                  "string": _string, "bytes": _bytes}


def _writer(schema: Any) -> Writer:
    if isinstance(schema, str):
        if schema not in _PRIMITIVES:
            raise Unsupported(schema)
        return _PRIMITIVES[schema]
    if isinstance(schema, list):
        return _union(schema)
    kind, logical = schema.get("type"), schema.get("logicalType")
    if kind == "record":
        return _record(schema)
    if kind == "array":
        return _array(schema)
    if logical == "decimal" and kind == "bytes":
        return _decimal(schema["precision"], schema.get("scale", 0))
    if logical == "date" and kind == "int":
        return _date
    if logical == "timestamp-micros" and kind == "long":
        return _timestamp(1_000_000)
    if logical == "timestamp-millis" and kind == "long":
        return _timestamp(1000)
    if logical is None and isinstance(kind, str):
        return _writer(kind)
    raise Unsupported(f"{kind}/{logical}")


def compile_writer(schema: dict[str, Any]) -> Callable[[Any], bytes] | None:
    """A function record → Avro binary for ``schema`` (JSON as written), or None when it has unsupported types."""
    try:
        write = _writer(schema)
    except Unsupported:
        return None

    def encode(record: Any) -> bytes:
        buf = bytearray()
        write(buf, record)
        return bytes(buf)

    return encode
