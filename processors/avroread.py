"""Avro binary decoders generated per writer schema, for the change events the router reads.

fastavro's ``schemaless_reader`` took about 30 µs per change event here,
the largest single cost of the router (py-spy, GIL samples: 18 %).
:func:`compile_reader` turns a writer schema into straight-line Python (one
function per named record) that gives the same dict as fastavro for the
types change events use: null, boolean, int, long, string, bytes, enums,
arrays, records (and references to named ones), unions, and the logical
types ``decimal`` (bytes), ``date``, ``timestamp-millis`` and
``timestamp-micros``.

A reader can also be told which fields of which records to read
(``keep``, by record name): the others are skipped over without being
converted, and are absent from the dict. The router reads only the columns
its stages use, and of the source block the commit time; and it reads
decimals as their text (``decimal_text``), which is what it forwards.

It is an accelerator only: a schema with any other type (map, fixed, float,
double, uuid, time-*, local timestamps...) gets no reader (None), and the
caller (processors/codec.py) falls back to fastavro for any record the
generated reader fails on, so truncated or foreign bytes get fastavro's
error. tests/unit/test_avroread.py compares both on random records of every
source table's schema.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Context
from typing import Any, Callable

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DAYS_SHIFT = date(1970, 1, 1).toordinal()
#: the most decimal values a reader remembers per field (see ``_Generator._logical``)
_KNOWN_DECIMALS = 4096


class Unsupported(Exception):
    """A schema this module does not read: the caller keeps fastavro for it."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint (Avro int and long) at ``pos``: (value, position after it)."""
    b = data[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    n, shift = b & 0x7F, 7
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7


class _Generator:
    def __init__(self, keep: dict[str, Any] | None = None, decimal_text: bool = False) -> None:
        self.keep = keep or {}
        self.decimal_text = decimal_text
        self.functions: dict[str, list[str]] = {}  # record fullname → source lines of its function
        self.named: dict[str, dict[str, Any]] = {}
        self.constants: dict[str, Any] = {}
        self._counter = 0

    def var(self, prefix: str = "v") -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    @staticmethod
    def varint(target: str, lines: list[str], indent: str) -> None:
        """Read a zig-zag varint into ``target``: inline for one byte (lengths, small numbers), else the loop."""
        lines += [f"{indent}{target} = d[p]", f"{indent}if {target} < 0x80:",
                  f"{indent}    {target} = ({target} >> 1) ^ -({target} & 1)", f"{indent}    p += 1",
                  f"{indent}else:", f"{indent}    {target}, p = _varint(d, p)"]

    def constant(self, value: Any) -> str:
        name = f"K{len(self.constants)}"
        self.constants[name] = value
        return name

    # Every emitter appends lines that read one value at ``p`` from ``d`` into ``target`` and advance ``p``.
    def emit(self, schema: Any, target: str, lines: list[str], indent: str, namespace: str | None) -> None:
        if isinstance(schema, list):
            return self._union(schema, target, lines, indent, namespace)
        if isinstance(schema, str):
            if schema in ("null", "boolean", "int", "long", "string", "bytes"):
                return self._primitive(schema, target, lines, indent)
            fullname = schema if "." in schema or namespace is None else f"{namespace}.{schema}"
            named = self.named.get(fullname) or self.named.get(schema)
            if named is None:
                raise Unsupported(f"type {schema}")
            return self._named(named, target, lines, indent)
        kind, logical = schema.get("type"), schema.get("logicalType")
        if kind == "record":
            self._define_record(schema, namespace)
            return self._named(schema, target, lines, indent)
        if kind == "enum":
            name = schema["name"]
            fullname = name if "." in name else (
                f"{schema.get('namespace', namespace)}.{name}" if schema.get("namespace", namespace) else name)
            self.named[fullname] = schema
            symbols = self.constant(tuple(schema["symbols"]))
            i = self.var("i")
            self.varint(i, lines, indent)
            lines += [f"{indent}if {i} < 0: raise ValueError('enum index')", f"{indent}{target} = {symbols}[{i}]"]
            return None
        if kind == "array":
            return self._array(schema, target, lines, indent, namespace)
        if logical is not None:
            return self._logical(schema, kind, logical, target, lines, indent)
        if isinstance(kind, (str, list, dict)):
            return self.emit(kind, target, lines, indent, namespace)
        raise Unsupported(f"type {kind}")

    def _primitive(self, kind: str, target: str, lines: list[str], indent: str) -> None:
        if kind == "null":
            lines.append(f"{indent}{target} = None")
        elif kind == "boolean":
            lines += [f"{indent}{target} = d[p] != 0", f"{indent}p += 1"]
        elif kind in ("int", "long"):
            self.varint(target, lines, indent)
        else:
            n = self.var("n")
            self.varint(n, lines, indent)
            lines.append(f"{indent}if {n} < 0 or p + {n} > len(d): raise ValueError('length')")
            value = f"d[p:p + {n}]" if kind == "bytes" else f"d[p:p + {n}].decode()"
            lines += [f"{indent}{target} = {value}", f"{indent}p += {n}"]

    def _logical(self, schema: dict[str, Any], kind: str, logical: str, target: str, lines: list[str],
                 indent: str) -> None:
        raw = self.var("r")
        if kind == "bytes" and logical == "decimal":
            # The values read, by their bytes: hours and rates repeat, and a lookup costs a fifth of the
            # conversion. A Decimal is immutable, so sharing one is safe; at _KNOWN_DECIMALS the dict stops growing.
            context, known = self.constant(Context(prec=schema["precision"])), self.constant({})
            self._primitive("bytes", raw, lines, indent)
            value = (f"{context}.create_decimal(int.from_bytes({raw}, 'big', signed=True))"
                     f".scaleb({-schema.get('scale', 0)}, {context})")
            if self.decimal_text:
                value = f"str({value})"
            lines += [f"{indent}{target} = {known}.get({raw})", f"{indent}if {target} is None:",
                      f"{indent}    {target} = {value}",
                      f"{indent}    if len({known}) < _KNOWN_DECIMALS:", f"{indent}        {known}[{raw}] = {target}"]
        elif kind == "int" and logical == "date":
            self.varint(raw, lines, indent)
            lines.append(f"{indent}{target} = _date({raw} + _DAYS_SHIFT)")
        elif kind == "long" and logical == "timestamp-micros":
            self.varint(raw, lines, indent)
            lines.append(f"{indent}{target} = _EPOCH + _timedelta(microseconds={raw})")
        elif kind == "long" and logical == "timestamp-millis":
            self.varint(raw, lines, indent)
            lines.append(f"{indent}{target} = _EPOCH + _timedelta(microseconds={raw} * 1000)")
        else:
            raise Unsupported(f"{kind}/{logical}")

    def union_index(self, lines: list[str], indent: str, count: int) -> str:
        """Read a union's branch index as its byte: an index below 64 is one byte, zig-zag encoded (2 × index), and
        any other byte (odd, or a longer varint) is no branch of a union this size."""
        if count > 64:
            raise Unsupported("a union of more than 64 branches")
        i = self.var("i")
        lines += [f"{indent}{i} = d[p]", f"{indent}p += 1"]
        return i

    def _union(self, branches: list[Any], target: str, lines: list[str], indent: str, namespace: str | None) -> None:
        i = self.union_index(lines, indent, len(branches))
        for index, branch in enumerate(branches):
            lines.append(f"{indent}{'if' if index == 0 else 'elif'} {i} == {2 * index}:")
            self.emit(branch, target, lines, indent + "    ", namespace)
        lines.append(f"{indent}else: raise ValueError('union branch')")

    def _array(self, schema: dict[str, Any], target: str, lines: list[str], indent: str,
               namespace: str | None) -> None:
        n, item, skip = self.var("n"), self.var("item"), self.var("s")
        lines += [f"{indent}{target} = []", f"{indent}{n}, p = _varint(d, p)", f"{indent}while {n} != 0:",
                  f"{indent}    if {n} < 0:", f"{indent}        {n} = -{n}", f"{indent}        {skip}, p = _varint(d, p)",
                  f"{indent}    for _ in range({n}):"]
        self.emit(schema["items"], item, lines, indent + "        ", namespace)
        lines += [f"{indent}        {target}.append({item})", f"{indent}    {n}, p = _varint(d, p)"]

    def _named(self, schema: dict[str, Any], target: str, lines: list[str], indent: str) -> None:
        lines.append(f"{indent}{target}, p = {_function_name(self._fullname(schema, None))}(d, p)")

    def _fullname(self, schema: dict[str, Any], namespace: str | None) -> str:
        name = schema["name"]
        if "." in name:
            return name
        space = schema.get("namespace", namespace)
        return f"{space}.{name}" if space else name

    def _define_record(self, schema: dict[str, Any], namespace: str | None) -> None:
        fullname = self._fullname(schema, namespace)
        schema.setdefault("namespace", fullname.rpartition(".")[0] or None)
        if fullname in self.named:
            return
        self.named[fullname] = schema
        own_namespace = fullname.rpartition(".")[0] or None
        lines = [f"def {_function_name(fullname)}(d, p):"]
        names = []
        keep = self.keep.get(schema["name"].rpartition(".")[2])
        for field in schema["fields"]:
            if keep is not None and field["name"] not in keep:
                self.skip(field["type"], lines, "    ", own_namespace)
                continue
            value = self.var("f")
            self.emit(field["type"], value, lines, "    ", own_namespace)
            names.append(f"{field['name']!r}: {value}")
        lines.append(f"    return {{{', '.join(names)}}}, p")
        self.functions[fullname] = lines

    def skip(self, schema: Any, lines: list[str], indent: str, namespace: str | None) -> None:
        """Lines that move ``p`` past one value of ``schema`` without converting it (still checking its framing)."""
        if isinstance(schema, list):
            i = self.union_index(lines, indent, len(schema))
            for index, branch in enumerate(schema):
                lines.append(f"{indent}{'if' if index == 0 else 'elif'} {i} == {2 * index}:")
                before = len(lines)
                self.skip(branch, lines, indent + "    ", namespace)
                if len(lines) == before:
                    lines.append(f"{indent}    pass")
            lines.append(f"{indent}else: raise ValueError('union branch')")
            return
        kind = schema if isinstance(schema, str) else schema.get("type")
        if isinstance(kind, (dict, list)):
            return self.skip(kind, lines, indent, namespace)
        if kind == "null":
            return
        if kind == "boolean":
            lines += [f"{indent}d[p]", f"{indent}p += 1"]
        elif kind in ("int", "long", "enum"):
            if isinstance(schema, dict) and kind == "enum":
                self.emit(schema, self.var("e"), lines, indent, namespace)  # registers the enum's name
            else:
                if isinstance(schema, dict) and schema.get("logicalType") not in (
                        None, "date", "timestamp-micros", "timestamp-millis"):
                    raise Unsupported(f"{kind}/{schema.get('logicalType')}")
                lines += [f"{indent}while d[p] >= 0x80:", f"{indent}    p += 1", f"{indent}p += 1"]
        elif kind in ("string", "bytes"):
            if isinstance(schema, dict) and schema.get("logicalType") not in (None, "decimal"):
                raise Unsupported(f"{kind}/{schema.get('logicalType')}")
            n = self.var("n")
            self.varint(n, lines, indent)
            lines += [f"{indent}if {n} < 0 or p + {n} > len(d): raise ValueError('length')", f"{indent}p += {n}"]
        else:  # records, arrays, named references: read and drop (rare in what is skipped)
            self.emit(schema, self.var("x"), lines, indent, namespace)


def _function_name(fullname: str) -> str:
    return "read_" + "".join(c if c.isalnum() else "_" for c in fullname)


def compile_reader(schema: dict[str, Any], keep: dict[str, Any] | None = None,
                   decimal_text: bool = False) -> Callable[[bytes], Any] | None:
    """A function bytes → record for writer ``schema`` (a record, JSON as registered), or None if unsupported.

    ``keep``: record name → the names of the fields to read; the other fields of that record are skipped.
    ``decimal_text``: decimals as ``str(Decimal)`` gives them (the router forwards them as text).
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    generator = _Generator(keep, decimal_text)
    try:
        root = generator._fullname(schema, None)
        generator._define_record(_copy(schema), None)
    except (Unsupported, KeyError, TypeError):
        return None
    source = "\n".join("\n".join(lines) for lines in generator.functions.values())
    scope: dict[str, Any] = {"_varint": _varint, "_date": date.fromordinal, "_DAYS_SHIFT": _DAYS_SHIFT,
                             "_KNOWN_DECIMALS": _KNOWN_DECIMALS,
                             "_EPOCH": _EPOCH, "_timedelta": timedelta, **generator.constants}
    exec(compile(source, f"<avro reader {root}>", "exec"), scope)  # noqa: S102 - code generated from the schema
    read = scope[_function_name(root)]

    def decode(data: bytes) -> Any:
        return read(data, 0)[0]

    return decode


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
