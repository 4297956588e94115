"""pgoutput TupleData bytes straight to Avro bytes, compiled once per table shape.

The reference path of the capture decodes a change into a message object
(:mod:`streams.pgoutput`), converts each text value into a Python value
(:mod:`streams.pgtypes`), builds the envelope as dicts and encodes them
(:mod:`streams.avrocodegen`). :class:`RowCodec` does the same work for the
Insert, Update and Delete messages of one Relation without the objects in
between: a function generated at Relation time walks the TupleData column
by column and appends each column's Avro encoding (``["null", T]`` branch
tag included), reading the text from the message bytes:

* strings (text, varchar, bpchar, json, jsonb, uuid, enums ...) are copied
  as sent: the Avro string is the UTF-8 text itself (checked to be UTF-8);
* integers go through ``int`` and a zig-zag varint, booleans through a
  table, floats through ``struct``;
* ``numeric(p,s)`` text with exactly ``s`` decimals becomes the unscaled
  integer's big-endian two's complement without ``Decimal``;
* dates and timestamps go through the reference converters, remembered per
  column for the last few thousand distinct texts (values repeat within a
  transaction: ``now()``, business dates);
* every other type (arrays, bytea, time, unconstrained numeric, oid)
  goes through the reference converter and the reference encoder of that
  one field.

Contracts:

* The bytes are exactly those of the reference path (tests/unit/streams/
  test_rowcodec.py compares both on every column type of DOMAIN.md, NULLs,
  unchanged TOAST markers, arrays and numerics with scale).
* :meth:`RowCodec.read` raises :class:`Fallback` for anything it does not
  handle or that is malformed (binary columns, wrong column count, bad
  text, truncated bytes, invalid UTF-8); the caller then runs the
  reference path on the same message, which publishes the same events or
  raises the reference error (DecodeError, ValueConversionError). Nothing
  is published before a message is read whole, so a fallback never
  duplicates an event.
* Key bytes compare equal exactly when the reference key values compare
  equal for the key types listed in ``_EXACT_KEY_TYPES``; a codec whose key
  has another type reports ``exact_keys = False`` and the caller compares
  key values the reference way.
"""

from __future__ import annotations

import re
import struct
from typing import Any, Callable, Sequence

from streams.avrocodegen import _EPOCH_ORDINAL, _encode_long, _micros_aware, _micros_naive, compile_encoder
from streams.envelope import ColumnSpec, avro_type
from streams.pgtypes import (
    BOOL, DATE, FLOAT4, FLOAT8, INT2, INT4, INT8, NUMERIC, TIMESTAMP, TIMESTAMPTZ,
    _date, _timestamp, _timestamptz, converter_for, numeric_precision_scale,
)

__all__ = ["Fallback", "RowCodec", "encode_long", "encode_string", "tagged_long"]


class Fallback(Exception):
    """The fast path does not take this message: run the reference path on it."""


# --- Avro primitives ----------------------------------------------------------------

# Varints of values up to 2**64 are assembled from 14-bit chunks: two bytes with continuation
# bits (_CHUNKS) and a last group without (_LAST, one or two bytes), about twice as fast as a
# per-byte loop for a timestamp or an LSN.
_MASK14 = 0x3FFF
_CHUNKS = [bytes(((x & 0x7F) | 0x80, ((x >> 7) & 0x7F) | 0x80)) for x in range(1 << 14)]
_LAST = [bytes((x,)) if x < 0x80 else bytes(((x & 0x7F) | 0x80, x >> 7)) for x in range(1 << 14)]
_TAGGED_CHUNKS = [b"\x02" + c for c in _CHUNKS]

_SMALL = 8192
_LONGS = []  # zig-zag varints of -_SMALL .. _SMALL-1
_TAGGED_LONGS = []  # the same behind the ["null", long] branch tag


def encode_long(n: int) -> bytes:
    """Avro long (zig-zag varint) of ``n``; the same bytes as fastavro; refuses values outside 64 bits."""
    if -_SMALL <= n < _SMALL:
        return _LONGS[n + _SMALL]
    z = (n << 1) ^ (n >> 63)
    if z < 0x10000000:
        return _CHUNKS[z & _MASK14] + _LAST[z >> 14]
    if z < 0x40000000000:
        return _CHUNKS[z & _MASK14] + _CHUNKS[z >> 14 & _MASK14] + _LAST[z >> 28]
    if z < 0x100000000000000:
        return _CHUNKS[z & _MASK14] + _CHUNKS[z >> 14 & _MASK14] + _CHUNKS[z >> 28 & _MASK14] + _LAST[z >> 42]
    if not -(1 << 63) <= n < (1 << 63):  # outside 64 bits, z is at least 2**64
        raise ValueError(f"integer {n} does not fit in an Avro long")
    return (_CHUNKS[z & _MASK14] + _CHUNKS[z >> 14 & _MASK14] + _CHUNKS[z >> 28 & _MASK14]
            + _CHUNKS[z >> 42 & _MASK14] + _LAST[z >> 56])


def tagged_long(n: int) -> bytes:
    """``encode_long(n)`` behind the ``["null", long]`` branch tag (b"\\x02")."""
    if -_SMALL <= n < _SMALL:
        return _TAGGED_LONGS[n + _SMALL]
    z = (n << 1) ^ (n >> 63)
    if z < 0x10000000:
        return _TAGGED_CHUNKS[z & _MASK14] + _LAST[z >> 14]
    if z < 0x40000000000:
        return _TAGGED_CHUNKS[z & _MASK14] + _CHUNKS[z >> 14 & _MASK14] + _LAST[z >> 28]
    if z < 0x100000000000000:
        return _TAGGED_CHUNKS[z & _MASK14] + _CHUNKS[z >> 14 & _MASK14] + _CHUNKS[z >> 28 & _MASK14] + _LAST[z >> 42]
    return b"\x02" + encode_long(n)


_LONGS.extend(_encode_long(n) for n in range(-_SMALL, _SMALL))
_TAGGED_LONGS.extend(b"\x02" + b for b in _LONGS)
#: b"\x02" + the length n as an Avro long: a non-null string's (or bytes') head.
_TAGGED_LENGTHS = _TAGGED_LONGS[_SMALL:]


def encode_string(s: str) -> bytes:
    b = s.encode()
    return encode_long(len(b)) + b


def _tagged_length(n: int) -> bytes:
    return b"\x02" + encode_long(n)


_BOOLS = {b"t": b"\x02\x01", b"f": b"\x02\x00"}
_PACK_F = struct.Struct("<f").pack
_PACK_D = struct.Struct("<d").pack
_CACHE_MAX = 4096


def _string_avro(spec: ColumnSpec) -> bool:
    """The column's text is its Avro value as sent: a string in Avro, ``str`` as converter."""
    kind = avro_type(spec.type_oid, spec.typmod)
    if isinstance(kind, dict) and "logicalType" not in kind:
        kind = kind["type"]
    return kind == "string" and converter_for(spec.type_oid, spec.typmod) is str


def _numeric_encoder(precision: int, scale: int, reference: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """numeric(p,s) text with exactly s decimals → tagged Avro decimal; anything else → ``reference``."""
    limit = 10**precision
    dot = -scale - 1

    def encode(v: bytes) -> bytes:
        if scale:
            if len(v) <= scale or v[dot] != 0x2E:  # '.'
                return reference(v)
            digits = v[:dot] + v[dot + 1:]
        else:
            digits = v
        try:
            unscaled = int(digits)
        except ValueError:
            return reference(v)
        if not -limit < unscaled < limit:
            return reference(v)  # raises the reference error
        size = ((unscaled if unscaled >= 0 else -unscaled).bit_length() + 8) >> 3
        return _TAGGED_LONGS[size + _SMALL] + unscaled.to_bytes(size, "big", signed=True)

    return encode


# The session's timestamp output (DateStyle ISO, TimeZone UTC: streams/replication.py), read as
# "minute" + seconds + fraction; anything else (other offsets, BC, years past 9999, infinity) goes
# through the reference converter.
_TIMESTAMP_TEXT = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d):([0-5]\d)(?:\.(\d{1,6}))?(\+00)?")


def _timestamp_encoder(aware: bool) -> Callable[[bytes], bytes]:
    """timestamptz (``aware``) or timestamp text → tagged Avro timestamp-micros / local-timestamp-micros.

    The minute is converted by the reference converter once (and remembered); seconds and
    fraction are added as integers, which is what the reference arithmetic gives.
    """
    if aware:
        def micros(text: str) -> int:
            return _micros_aware(_timestamptz(text))
    else:
        def micros(text: str) -> int:
            return _micros_naive(_timestamp(text))
    minutes: dict[bytes, int] = {}
    suffix = b":00+00" if aware else b":00"

    def encode(v: bytes) -> bytes:
        m = _TIMESTAMP_TEXT.fullmatch(v)
        if m is None or (m[4] is None) is aware:
            return tagged_long(micros(v.decode()))
        minute, fraction = m[1], m[3]
        base = minutes.get(minute)
        if base is None:
            if len(minutes) >= _CACHE_MAX:
                minutes.clear()
            base = minutes[minute] = micros((minute + suffix).decode())
        if fraction is None:
            return tagged_long(base + int(m[2]) * 1_000_000)
        return tagged_long(base + int(m[2]) * 1_000_000 + int(fraction.ljust(6, b"0")))

    return encode


def _reference_encoder(spec: ColumnSpec) -> Callable[[bytes], bytes]:
    """The reference path for one column: text → pgtypes converter → the compiled Avro field encoder."""
    field = compile_encoder({"type": "record", "name": "Column", "namespace": "psmesh.rowcodec",
                             "fields": [{"name": "v", "type": ["null", avro_type(spec.type_oid, spec.typmod)]}]})
    convert = converter_for(spec.type_oid, spec.typmod)

    def encode(v: bytes) -> bytes:
        return field({"v": convert(v.decode())})

    return encode


def _memo(encode: Callable[[bytes], bytes], cache: dict) -> Callable[[bytes], bytes]:
    """``encode`` remembered for up to _CACHE_MAX distinct texts (then forgotten at once)."""

    def miss(v: bytes) -> bytes:
        out = encode(v)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        if len(v) <= 64:
            cache[v] = out
        return out

    return miss


#: Key column types whose encodings are equal exactly when the reference values are equal.
_EXACT_KEY_TYPES = {INT2, INT4, INT8, BOOL, DATE, TIMESTAMP, TIMESTAMPTZ}

_INT_TYPES = (INT2, INT4, INT8)


class RowCodec:
    """One table shape: TupleData → Avro parts of its ``Value`` record, and key bytes.

    ``read(buf, pos, ap, unchanged)`` reads the TupleData at ``pos`` (its
    column count first), calls ``ap`` with the tagged Avro bytes of each
    column (``b"\\x00"`` for NULL and for an unchanged TOAST value, whose
    column name it appends to ``unchanged``) and returns ``(end, key)``:
    the offset after the tuple and the key record's bytes (without the
    Confluent prefix), or ``None`` when a key column is NULL or unchanged.
    """

    __slots__ = ("read", "exact_keys", "columns", "positions", "source")

    def __init__(self, columns: Sequence[ColumnSpec]) -> None:
        self.columns = tuple(columns)
        #: column name → its position in the tuple (the index of its part after the branch tag, minus one)
        self.positions = {c.name: i for i, c in enumerate(self.columns)}
        self.exact_keys = all(
            c.type_oid in _EXACT_KEY_TYPES or _string_avro(c) or self._fixed_numeric(c) for c in columns if c.key
        )
        self.source = ""
        self.read = self._compile()

    @staticmethod
    def _fixed_numeric(spec: ColumnSpec) -> bool:
        ps = numeric_precision_scale(spec.typmod) if spec.type_oid == NUMERIC else None
        return ps is not None and 0 <= ps[1] <= ps[0]

    def _compile(self) -> Callable[..., Any]:
        n = len(self.columns)
        env: dict[str, Any] = {
            "Fallback": Fallback, "unpack_len": struct.Struct("!I").unpack_from, "int": int, "float": float,
            "TL": _TAGGED_LENGTHS, "_tagged_length": _tagged_length, "_SMALL": _SMALL,
            "tagged_long": tagged_long, "_BOOLS": _BOOLS, "_PACK_F": _PACK_F, "_PACK_D": _PACK_D,
        }
        lines = [
            "def read(buf, pos, ap, unchanged):",
            f"    if buf[pos] != {n >> 8} or buf[pos + 1] != {n & 0xFF}:",
            "        raise Fallback('column count')",
            "    pos += 2",
        ]
        keys = []
        for i, spec in enumerate(self.columns):
            value = self._value_code(i, spec, env)
            lines += [
                "    k = buf[pos]",
                "    if k == 116:",  # 't': Int32 length, text
                "        s = pos + 5",
                "        pos = s + unpack_len(buf, pos + 1)[0]",
                "        v = buf[s:pos]",
                *(f"        {line}" for line in value),
                "    elif k == 110:",  # 'n': NULL
                "        pos += 1",
                "        x = b'\\x00'",
                "    elif k == 117:",  # 'u': unchanged TOAST
                "        pos += 1",
                "        x = b'\\x00'",
                f"        unchanged.append({spec.name!r})",
                "    else:",
                "        raise Fallback('binary or unknown column kind')",
                "    ap(x)",
            ]
            if spec.key:
                lines.append(f"    key{i} = x")
                keys.append(f"key{i}")
        if len(keys) == 1:
            lines += [f"    if len({keys[0]}) < 2:", "        return pos, None", f"    return pos, {keys[0]}[1:]"]
        elif keys:
            lines += [f"    if {' or '.join(f'len({k}) < 2' for k in keys)}:", "        return pos, None",
                      f"    return pos, b''.join(({', '.join(f'{k}[1:]' for k in keys)},))"]
        else:
            lines.append("    return pos, None")
        self.source = "\n".join(lines)
        exec(compile(self.source, "<row codec>", "exec"), env)  # noqa: S102 - generated from column types, no user input
        return env["read"]

    def _value_code(self, i: int, spec: ColumnSpec, env: dict[str, Any]) -> list[str]:
        """Lines that set ``x`` to the tagged Avro bytes of text ``v`` of column ``i``."""
        oid = spec.type_oid
        if _string_avro(spec):
            return [
                "n = pos - s",
                "if not v.isascii():",
                "    v.decode()",  # UnicodeDecodeError: the reference path raises DecodeError
                "x = (TL[n] if n < _SMALL else _tagged_length(n)) + v",
            ]
        if oid in _INT_TYPES:
            return ["x = tagged_long(int(v))"]
        if oid == BOOL:
            return ["x = _BOOLS[v]"]
        if oid == FLOAT8:
            return ["x = b'\\x02' + _PACK_D(float(v))"]
        if oid == FLOAT4:
            return ["x = b'\\x02' + _PACK_F(float(v))"]
        reference = _reference_encoder(spec)
        if self._fixed_numeric(spec):
            precision, scale = numeric_precision_scale(spec.typmod)  # type: ignore[misc]
            encode = _numeric_encoder(precision, scale, reference)
        elif oid == DATE:
            def encode(v: bytes) -> bytes:
                return tagged_long(_date(v.decode()).toordinal() - _EPOCH_ORDINAL)
        elif oid == TIMESTAMPTZ:
            encode = _timestamp_encoder(True)
        elif oid == TIMESTAMP:
            encode = _timestamp_encoder(False)
        else:
            encode = reference
        cache: dict[bytes, bytes] = {}
        env[f"cache{i}"] = cache.get
        env[f"miss{i}"] = _memo(encode, cache)
        return [f"x = cache{i}(v)", "if x is None:", f"    x = miss{i}(v)"]
