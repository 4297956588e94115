"""Avro binary encoders compiled from a schema, for the capture's hot path.

fastavro's ``schemaless_writer`` re-parses the schema on every call and
resolves each ``["null", T]`` union by validating the value, which costs
70-130 µs per change event of a 14-column table (measured: see
docs/capture.md). The capture writes millions of events of a handful of
shapes, so it compiles one Python function per shape instead: straight-line
code that writes each field with no lookup or validation on the way. The
output is byte-for-byte what fastavro writes (checked by
tests/unit/streams/test_avrocodegen.py on every DOMAIN.md type), and decoding
is left to the standard readers.

Supported: null, boolean, int, long, float, double, bytes, string, enum,
record (named, with references), array, map, unions of ``null`` and one
other type, and the logical types decimal (on bytes), date,
timestamp-micros, timestamp-millis, local-timestamp-micros, time-micros,
uuid. Anything else raises :class:`UnsupportedSchema`, and the caller falls
back to fastavro.
"""

from __future__ import annotations

import struct
from datetime import date, datetime, timezone
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any, Callable

__all__ = ["UnsupportedSchema", "compile_encoder"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class UnsupportedSchema(ValueError):
    pass


def _encode_long(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63) if -(1 << 63) <= n < (1 << 63) else _out_of_range(n)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# Lengths, small ids and enum indexes hit this table; timestamps and LSNs take the loop.
_TABLE_HALF = 8192
_TABLE = [_encode_long(n) for n in range(-_TABLE_HALF, _TABLE_HALF)]


#: longs outside the table, as encoded: dates (days since 1970, past 8,192 since 1992) and large ids repeat, and a
#: lookup costs a tenth of the loop; instants rarely repeat and only fill it until it is emptied at the maximum
_LONGS: dict[int, bytes] = {}
_LONGS_MAX = 65536


def _zigzag(n: int) -> bytes:
    if -_TABLE_HALF <= n < _TABLE_HALF:
        return _TABLE[n + _TABLE_HALF]
    found = _LONGS.get(n)
    if found is None:
        found = _encode_long(n)
        if len(_LONGS) >= _LONGS_MAX:
            _LONGS.clear()
        _LONGS[n] = found
    return found


def _out_of_range(n: int) -> int:
    raise ValueError(f"integer {n} does not fit in an Avro long")


# Short strings repeat (status, role, table and database names, codes): encode each once.
_STRING_CACHE: dict[str, bytes] = {}
_STRING_CACHE_MAX = 65536


def _string(s: Any) -> bytes:
    cached = _STRING_CACHE.get(s)
    if cached is not None:
        return cached
    if s.__class__ is not str:
        # A Decimal carried as text (unconstrained numeric): never cached, since
        # Decimal('1.0') == Decimal('1.00') would share an entry. Positional, as PostgreSQL writes it: str() gives
        # '1E-7' for 0.0000001 and '0E-8' for 0.00000000. Anything else a snapshot loads for a text column (a UUID,
        # an interval) as str() gives it.
        b = (format(s, "f") if s.__class__ is Decimal else str(s)).encode()
        return _zigzag(len(b)) + b
    b = s.encode()
    n = len(b)
    encoded = (_TABLE[n + _TABLE_HALF] if n < _TABLE_HALF else _encode_long(n)) + b
    if n <= 48 and len(_STRING_CACHE) < _STRING_CACHE_MAX:
        _STRING_CACHE[s] = encoded
    return encoded


def _bytes(b: bytes) -> bytes:
    return _zigzag(len(b)) + bytes(b)


def _micros_aware(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("timestamp-micros needs an aware datetime")
    d = dt - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def _micros_naive(dt: datetime) -> int:
    d = dt.replace(tzinfo=None) - _EPOCH_NAIVE
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def _time_micros(t) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


#: values remembered per decimal type (streams of many distinct amounts start over when it is full)
_KNOWN_DECIMALS = 4096
#: Exact decimal arithmetic: the default context keeps 28 digits and would round a numeric(38,2) silently.
#: ``scaleb`` only moves the exponent, so with this precision it never rounds.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _decimal_encoder(precision: int, scale: int) -> Callable[[Decimal], bytes]:
    limit = 10**precision
    #: the bytes of the values seen: hours and amounts repeat (7.50, 40.00, a rate), and a lookup costs a fifth of
    #: the arithmetic. Equal values encode alike (the encoding is of the number, not of its exponent); only a
    #: ``Decimal`` is looked up, so that a float or an int equal to a value seen is refused as before.
    known: dict[Decimal, bytes] = {}

    def encode(value: Decimal) -> bytes:
        if type(value) is Decimal:
            found = known.get(value)
            if found is not None:
                return found
        if not value.is_finite():
            raise ValueError(f"decimal({precision},{scale}) cannot hold {value}")
        scaled = value.scaleb(scale, _EXACT)
        if scaled and scaled.adjusted() >= precision:  # checked before int(), which could be huge
            raise ValueError(f"decimal({precision},{scale}) cannot hold a value of more than {precision} digits")
        unscaled = int(scaled)
        if scaled != unscaled:
            raise ValueError(f"decimal({precision},{scale}) cannot hold a value with more than {scale} decimal places")
        if not -limit < unscaled < limit:
            raise ValueError(f"decimal({precision},{scale}) cannot hold a value of more than {precision} digits")
        # Two's complement, big-endian, sized as fastavro sizes it (one byte more
        # than minimal for some negative powers of two; every reader accepts both).
        size = ((unscaled if unscaled >= 0 else -unscaled).bit_length() + 8) >> 3
        out = _TABLE[size + _TABLE_HALF] + unscaled.to_bytes(size, "big", signed=True)
        if type(value) is Decimal:
            if len(known) >= _KNOWN_DECIMALS:
                known.clear()
            known[value] = out
        return out

    return encode


class _Compiler:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "_zigzag": _zigzag, "_string": _string, "_bytes": _bytes, "_micros_aware": _micros_aware,
            "_micros_naive": _micros_naive, "_time_micros": _time_micros, "_EPOCH_ORDINAL": _EPOCH_ORDINAL,
            "_pack_f": struct.Struct("<f").pack, "_pack_d": struct.Struct("<d").pack, "str": str,
            "_string_cached": _STRING_CACHE.get,
        }
        self.named: dict[str, dict] = {}
        self.functions: dict[str, str] = {}
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def register_names(self, schema: Any, namespace: str = "") -> None:
        if isinstance(schema, list):
            for branch in schema:
                self.register_names(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in ("record", "enum", "fixed"):
                full = _fullname(schema, namespace)
                self.named[full] = schema
                ns = full.rpartition(".")[0]
                if kind == "record":
                    for f in schema["fields"]:
                        self.register_names(f["type"], ns)
            elif kind == "array":
                self.register_names(schema["items"], namespace)
            elif kind == "map":
                self.register_names(schema["values"], namespace)
            elif isinstance(kind, (dict, list)):
                self.register_names(kind, namespace)

    def resolve(self, schema: Any, namespace: str) -> tuple[Any, str]:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            full = schema if "." in schema else (f"{namespace}.{schema}" if namespace else schema)
            if full not in self.named and schema in self.named:
                full = schema
            if full not in self.named:
                raise UnsupportedSchema(f"unknown named type {schema!r}")
            return self.named[full], full.rpartition(".")[0]
        if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)) and "logicalType" not in schema:
            return self.resolve(schema["type"], namespace)
        if isinstance(schema, dict) and isinstance(schema.get("type"), str) and schema["type"] in _PRIMITIVES and "logicalType" not in schema:
            return schema["type"], namespace
        return schema, namespace

    def expression(self, schema: Any, value: str, namespace: str) -> str | None:
        """A Python expression giving the bytes of ``value`` for a scalar type; None for the rest."""
        schema, namespace = self.resolve(schema, namespace)
        if isinstance(schema, str):
            return {
                "boolean": f"(b'\\x01' if {value} else b'\\x00')",
                "int": f"_zigzag({value})",
                "long": f"_zigzag({value})",
                "float": f"_pack_f({value})",
                "double": f"_pack_d({value})",
                "bytes": f"_bytes({value})",
                # Inline cache hit: no call for the short strings that repeat.
                "string": f"(_string_cached({value}) or _string({value}))",
            }.get(schema)
        if not isinstance(schema, dict):
            return None
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical == "decimal" and kind == "bytes":
            name = self.var("_dec")
            self.env[name] = _decimal_encoder(int(schema["precision"]), int(schema.get("scale", 0)))
            return f"{name}({value})"
        if logical == "date" and kind == "int":
            return f"_zigzag({value}.toordinal() - _EPOCH_ORDINAL)"
        if logical == "timestamp-micros" and kind == "long":
            return f"_zigzag(_micros_aware({value}))"
        if logical == "timestamp-millis" and kind == "long":
            return f"_zigzag(_micros_aware({value}) // 1000)"
        if logical == "local-timestamp-micros" and kind == "long":
            return f"_zigzag(_micros_naive({value}))"
        if logical == "time-micros" and kind == "long":
            return f"_zigzag(_time_micros({value}))"
        if logical == "uuid" and kind == "string":
            return f"_string(str({value}))"
        if kind == "enum":
            name = self.var("_enum")
            self.env[name] = {s: _zigzag(i) for i, s in enumerate(schema["symbols"])}
            return f"{name}[{value}]"
        if kind in _PRIMITIVES and logical is None:
            return self.expression(kind, value, namespace)
        return None

    def emit(self, schema: Any, value: str, indent: str, namespace: str) -> None:
        schema, namespace = self.resolve(schema, namespace)
        if schema == "null":
            return
        simple = self.expression(schema, value, namespace)
        if simple is not None:
            self.lines.append(f"{indent}ap({simple})")
            return
        if isinstance(schema, str):
            raise UnsupportedSchema(f"type {schema!r}")
        if isinstance(schema, list):
            branches = [self.resolve(b, namespace)[0] for b in schema]
            if len(schema) == 2 and "null" in branches:
                null_index = branches.index("null")
                other = schema[1 - null_index]
                v = self.var("u")
                tag_null, tag_value = repr(bytes((null_index * 2,))), repr(bytes(((1 - null_index) * 2,)))
                self.lines.append(f"{indent}{v} = {value}")
                inner = self.expression(other, v, namespace)
                if inner is not None:
                    # One append per field: the branch tag and the value together.
                    self.lines.append(f"{indent}ap({tag_null} if {v} is None else {tag_value} + {inner})")
                    return
                self.lines.append(f"{indent}if {v} is None:")
                self.lines.append(f"{indent}    ap({tag_null})")
                self.lines.append(f"{indent}else:")
                self.lines.append(f"{indent}    ap({tag_value})")
                self.emit(other, v, indent + "    ", namespace)
                return
            if len(schema) == 1:
                self.lines.append(f"{indent}ap(b'\\x00')")
                self.emit(schema[0], value, indent, namespace)
                return
            raise UnsupportedSchema("unions other than [null, T]")
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical is not None and kind not in ("record", "array", "map"):
            raise UnsupportedSchema(f"type {kind!r} / logical type {logical!r}")
        if kind == "record":
            full = _fullname(schema, namespace)
            fn = self.record_function(schema, full)
            self.lines.append(f"{indent}{fn}({value}, parts)")
        elif kind == "array":
            v, item = self.var("a"), self.var("i")
            self.lines.append(f"{indent}{v} = {value}")
            self.lines.append(f"{indent}if {v}:")
            self.lines.append(f"{indent}    ap(_zigzag(len({v})))")
            self.lines.append(f"{indent}    for {item} in {v}:")
            self.emit(schema["items"], item, indent + "        ", namespace)
            self.lines.append(f"{indent}ap(b'\\x00')")
        elif kind == "map":
            v, k, item = self.var("m"), self.var("k"), self.var("i")
            self.lines.append(f"{indent}{v} = {value}")
            self.lines.append(f"{indent}if {v}:")
            self.lines.append(f"{indent}    ap(_zigzag(len({v})))")
            self.lines.append(f"{indent}    for {k}, {item} in {v}.items():")
            self.lines.append(f"{indent}        ap(_string({k}))")
            self.emit(schema["values"], item, indent + "        ", namespace)
            self.lines.append(f"{indent}ap(b'\\x00')")
        else:
            raise UnsupportedSchema(f"type {kind!r} / logical type {logical!r}")

    def record_function(self, schema: dict, full: str) -> str:
        if full in self.functions:
            return self.functions[full]
        fn = "_rec_" + full.replace(".", "_").replace("-", "_")
        self.functions[full] = fn
        outer, self.lines = self.lines, []
        namespace = full.rpartition(".")[0]
        self.lines.append(f"def {fn}(rec, parts):")
        self.lines.append("    ap = parts.append")
        for field in schema["fields"]:
            self.emit(field["type"], f"rec[{field['name']!r}]", "    ", namespace)
        self.lines.append("    return None")
        body, self.lines = self.lines, outer
        self.env.setdefault("_sources", []).append("\n".join(body))
        return fn


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _fullname(schema: dict, namespace: str) -> str:
    name = schema["name"]
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


def compile_encoder(schema: dict, prefix: bytes = b"") -> Callable[[dict], bytes]:
    """A function record → ``prefix`` + the record's Avro binary encoding."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise UnsupportedSchema("the top-level schema must be a record")
    compiler = _Compiler()
    compiler.register_names(schema)
    top = compiler.record_function(schema, _fullname(schema, ""))
    source = "\n\n".join(compiler.env.pop("_sources"))
    source += f"\n\ndef encode(rec):\n    parts = [{prefix!r}]\n    {top}(rec, parts)\n    return b''.join(parts)\n"
    namespace = dict(compiler.env)
    exec(compile(source, f"<avro encoder {schema.get('name')}>", "exec"), namespace)  # noqa: S102 - code generated from a schema, no user input
    return namespace["encode"]
