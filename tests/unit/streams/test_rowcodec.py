"""The capture's fast path (streams.rowcodec) publishes exactly what the reference path publishes.

Both paths run inside a real CaptureSource with a recording publisher and a
registrar that needs no server: the same pgoutput messages go through
``fast_path=True`` and ``fast_path=False`` and every (topic, key, value, headers) sent,
and every error raised, must be identical, byte for byte.
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
from pathlib import Path

import fastavro
import pytest

from streams import position
from streams.avrocodegen import _zigzag
from streams.envelope import ColumnSpec, value_schema
from streams.rowcodec import encode_long
from streams.source import CaptureConfig, CaptureSource
from tests.unit.streams.stand_ins import MemoryRegistrar

VECTORS = Path(__file__).parent / "vectors" / "v2"
ORIGIN = position.origin("7441862374219938371", 1)
U = object()  # an unchanged TOAST column in a synthetic tuple


class _Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list | None]] = []

    def send(self, topic, key, value, on_delivery, headers=None) -> None:
        self.sent.append((topic, key, value, headers))

    def produce(self, topic, value, key, partition, on_delivery, headers=None) -> None:
        assert partition == -1  # librdkafka's partitioner picks it
        self.sent.append((topic, key, value, headers))

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def flush(self, timeout: float = 30.0) -> int:
        return 0


def _run(tmp_path: Path, messages: list[tuple[int, bytes]], fast: bool, slow: list | None = None) -> list:
    """Feed (wal_start, payload) messages to a capture; what it sent and raised, in order.

    ``slow`` collects the changes that went through the reference path."""
    tables = tuple(f"public.{t}" for t in ("orders", "totals", "arrays", "texts", "stamps", "docs"))
    config = CaptureConfig(name="crm", dsn="", database="crm", tables=tables, slot="s", publication="p",
                           registry_url="http://unused", kafka={}, state_dir=tmp_path / ("fast" if fast else "ref"))
    config.state_dir.mkdir(parents=True, exist_ok=True)
    publisher = _Publisher()
    capture = CaptureSource(config, registrar=MemoryRegistrar(), publisher=publisher, fast_path=fast)
    capture._origin = ORIGIN  # as _open_stream sets it from the server's IDENTIFY_SYSTEM
    capture._primary_key = lambda ref: frozenset({"order_id", "id"})  # REPLICA IDENTITY FULL tables' primary keys
    if slow is not None:
        change = capture._change
        capture._change = lambda m, lsn: (slow.append(m), change(m, lsn))
    out: list = []
    for wal_start, payload in messages:
        try:
            capture._on_wal(payload, wal_start, wal_start + 8)
        except Exception as exc:  # noqa: BLE001 - compared between the paths
            out.append(("raised", type(exc).__name__, str(exc)))
        out.extend(publisher.sent)
        publisher.sent.clear()
    return out


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1795640017.646)


def _assert_same(tmp_path, messages, slow: list | None = None):
    reference = _run(tmp_path, messages, fast=False)
    fast = _run(tmp_path, messages, fast=True, slow=slow)
    assert len(fast) == len(reference)
    for i, (f, r) in enumerate(zip(fast, reference)):
        assert f == r, f"event {i}"
    return reference


@pytest.mark.parametrize("vector", sorted(p.name for p in VECTORS.glob("*.json")))
def test_fast_path_publishes_the_reference_bytes_for_every_captured_vector(tmp_path, vector):
    messages = [(int(m["lsn"].split("/")[0], 16) << 32 | int(m["lsn"].split("/")[1], 16), bytes.fromhex(m["data"]))
                for m in json.loads((VECTORS / vector).read_text())["messages"]]
    _assert_same(tmp_path, messages)


# --- synthetic messages: every DOMAIN.md column type, odd values, malformed input -------------


def _cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def _typmod_numeric(p: int, s: int) -> int:
    return ((p << 16) | s) + 4


# (name, type oid, typmod, key)
WIDE = [
    ("order_id", 20, -1, True), ("small", 21, -1, False), ("qty", 23, -1, False),
    ("amount", 1700, _typmod_numeric(14, 2), False), ("probability", 1700, _typmod_numeric(5, 2), False),
    ("whole", 1700, _typmod_numeric(10, 0), False), ("free", 1700, -1, False),
    ("close_date", 1082, -1, False), ("updated_at", 1184, -1, False), ("local_ts", 1114, -1, False),
    ("clock", 1083, -1, False), ("active", 16, -1, False), ("notes", 25, -1, False), ("code", 1043, 24, False),
    ("currency", 1042, 7, False), ("skills", 1009, -1, False), ("scores", 1007, -1, False),
    ("rates", 1231, -1, False), ("attributes", 3802, -1, False), ("doc", 114, -1, False), ("blob", 17, -1, False),
    ("ratio", 701, -1, False), ("ratio4", 700, -1, False), ("ref", 2950, -1, False), ("owner_oid", 26, -1, False),
    ("status", 16500, -1, False), ("span", 1186, -1, False), ("big", 20, -1, False),
]

POOLS = {
    20: ["0", "1", "-1", "63", "64", "-65", "8191", "8192", "-8193", "2097151", "268435456", "1795640017123456",
         "9223372036854775807", "-9223372036854775808"],
    21: ["0", "-32768", "32767", "12"],
    23: ["0", "2147483647", "-2147483648", "45", "-1"],
    1700: ["0.00", "1.50", "-0.50", "151.50", "999999999999.99", "-999999999999.99", "0.01", "127.99", "1.28",
           "-1.28", "-1.29", "655.36"],
    "p5": ["0.00", "62.50", "100.00", "999.99", "-999.99", "1.5"],
    "p10s0": ["0", "1", "-1", "9999999999", "-9999999999", "128", "-128", "-129", "255", "256", "32768"],
    "free": ["0", "1.0", "1.00", "-3.14159", "0.0000001", "123456789012345678901234567890.123", "NaN"],
    1082: ["2026-11-03", "1970-01-01", "1969-12-31", "0001-01-01", "9999-12-31", "2000-02-29"],
    1184: ["2026-11-21 10:00:01.123456+00", "2026-11-20 22:31:00+05:30", "2026-02-28 23:59:59.999999-03",
           "1890-01-01 00:00:00-03:06:28", "1970-01-01 00:00:00+00", "1969-12-31 23:59:59.999999+00",
           "2026-03-01 09:30:00.5+00", "2026-11-21 10:00:59.000001+00", "2026-11-21 10:00:59.99+00",
           "1969-12-31 23:59:59+00", "0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00"],
    1114: ["2026-11-21 10:00:01.123456", "1970-01-01 00:00:00", "1960-06-01 12:00:00.000001", "2026-03-01 09:30:00",
           "2026-03-01 09:30:00.25", "0001-01-01 00:00:00", "9999-12-31 23:59:59.999999"],
    1083: ["00:00:00", "23:59:59.999999", "12:30:00.5"],
    16: ["t", "f"],
    25: ["", "Acme", "Émile & Co", "東京", "x" * 300, "with\nnewline", "a" * 9000],
    1043: ["", "EUR", "PRJ-1001"],
    1042: ["EU ", "USD"],
    1009: ["{}", "{aws,gcp}", '{aws,NULL,"",\"with,comma\",\"with \\\"quote\\\"\",\"back\\\\slash\"}',
           '{"NULL",null}'],
    1007: ["{}", "{1,-2,NULL}", "[0:1]={5,6}"],
    1231: ["{}", "{1.50,NULL,-0.01}"],
    3802: ['{"a": [1, 2]}', "{}", '{"é": "東京"}'],
    114: ['{"a":1}', "[]"],
    17: ["\\x", "\\xdeadbeef", "\\x00ff"],
    701: ["0", "-0", "1.5", "3.141592653589793", "NaN", "Infinity", "-Infinity", "1e+300"],
    700: ["0", "1.5", "3.1415927", "NaN", "-Infinity"],
    2950: ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
    26: ["0", "16384", "4294967295"],
    16500: ["open", "closed"],
    1186: ["1 day 02:00:00", "-00:00:01"],
}


def _pool(name: str, oid: int, typmod: int) -> list[str]:
    if oid == 1700:
        return {_typmod_numeric(5, 2): POOLS["p5"], _typmod_numeric(10, 0): POOLS["p10s0"], -1: POOLS["free"]}.get(
            typmod, POOLS[1700])
    return POOLS[oid]


class _Wire:
    """A minimal pgoutput (protocol 2) writer for synthetic messages."""

    def __init__(self) -> None:
        self.lsn = 0x5000000
        self.messages: list[tuple[int, bytes]] = []

    def add(self, payload: bytes) -> None:
        self.lsn += 0x100
        self.messages.append((self.lsn, payload))

    def relation(self, rid: int, name: str, columns, identity: bytes = b"d") -> None:
        body = b"".join(bytes((1 if key else 0,)) + _cstr(n) + struct.pack("!Ii", oid, typmod)
                        for n, oid, typmod, key in columns)
        self.add(b"R" + struct.pack("!I", rid) + _cstr("public") + _cstr(name) + identity
                 + struct.pack("!H", len(columns)) + body)

    def begin(self, xid: int) -> None:
        self.add(b"B" + struct.pack("!QqI", self.lsn + 0x10000, 849_000_000_000_000, xid))

    def commit(self) -> None:
        self.add(b"C" + struct.pack("!BQQq", 0, self.lsn, self.lsn + 8, 849_000_000_000_000))

    @staticmethod
    def tuple(values) -> bytes:
        out = [struct.pack("!H", len(values))]
        for v in values:
            if v is None:
                out.append(b"n")
            elif v is U:
                out.append(b"u")
            elif isinstance(v, bytes):
                out.append(b"b" + struct.pack("!I", len(v)) + v)
            else:
                b = v.encode()
                out.append(b"t" + struct.pack("!I", len(b)) + b)
        return b"".join(out)

    def insert(self, rid: int, values) -> None:
        self.add(b"I" + struct.pack("!I", rid) + b"N" + self.tuple(values))

    def update(self, rid: int, new, old=None, key=None) -> None:
        head = b"O" + self.tuple(old) if old is not None else (b"K" + self.tuple(key) if key is not None else b"")
        self.add(b"U" + struct.pack("!I", rid) + head + b"N" + self.tuple(new))

    def delete(self, rid: int, old=None, key=None) -> None:
        self.add(b"D" + struct.pack("!I", rid) + (b"O" + self.tuple(old) if old is not None else b"K" + self.tuple(key)))


def _random_row(rng: random.Random, order_id: int, nulls: float = 0.15, unchanged: float = 0.0) -> list:
    row: list = [str(order_id)]
    for name, oid, typmod, _ in WIDE[1:]:
        roll = rng.random()
        if roll < nulls:
            row.append(None)
        elif roll < nulls + unchanged:
            row.append(U)
        else:
            row.append(rng.choice(_pool(name, oid, typmod)))
    return row


def test_fast_path_matches_the_reference_on_every_column_type_with_nulls_toast_and_key_changes(tmp_path):
    rng = random.Random(20261126)
    wire = _Wire()
    wire.relation(16400, "orders", WIDE)
    for xid in range(700, 760):
        wire.begin(xid)
        for i in range(8):
            order_id = rng.randint(-3, 20)
            op = rng.random()
            if op < 0.5:
                wire.insert(16400, _random_row(rng, order_id))
            elif op < 0.7:
                wire.update(16400, _random_row(rng, order_id, unchanged=0.2))
            elif op < 0.8:  # the key changed: pgoutput sends the old key
                key = [str(order_id + 100)] + [None] * (len(WIDE) - 1)
                wire.update(16400, _random_row(rng, order_id, unchanged=0.1), key=key)
            else:
                wire.delete(16400, key=[str(order_id)] + [None] * (len(WIDE) - 1))
        wire.commit()
    # REPLICA IDENTITY FULL: the old row comes along; the key may or may not change.
    wire.relation(16400, "orders", [(n, o, t, True) for n, o, t, _ in WIDE], identity=b"f")
    for xid in range(800, 830):
        wire.begin(xid)
        old = _random_row(rng, 7, unchanged=0.0)
        wire.update(16400, _random_row(rng, rng.choice([7, 8]), unchanged=0.2), old=old)
        wire.delete(16400, old=_random_row(rng, 9))
        wire.insert(16400, _random_row(rng, 10, nulls=0.0))
        wire.commit()
    slow: list = []
    events = _assert_same(tmp_path, wire.messages, slow)
    assert len(events) > 500 and not any(e[0] == "raised" for e in events)
    assert slow == []  # every change took the fast path
    assert any(e[0] != "raised" and e[2] is None for e in events)  # tombstones were compared too


def test_fast_path_matches_the_reference_on_composite_and_text_keys_and_schema_changes(tmp_path):
    wire = _Wire()
    cols = [("region", 25, -1, True), ("day", 1082, -1, True), ("amount", 1700, _typmod_numeric(12, 3), False)]
    wire.relation(16401, "totals", cols)
    wire.begin(900)
    wire.insert(16401, ["EMEA", "2026-01-05", "12.500"])
    wire.update(16401, ["APAC", "2026-01-05", "1.000"], key=["EMEA", "2026-01-05", None])
    wire.update(16401, ["APAC", "2026-01-05", "2.000"], key=["APAC", "2026-01-05", None])  # same key, sent anyway
    wire.delete(16401, key=["APAC", "2026-01-05", None])
    wire.commit()
    # ALTER TABLE ... ADD COLUMN: a new Relation in the middle of the stream
    wire.relation(16401, "totals", [*cols, ("note", 25, -1, False)])
    wire.begin(901)
    wire.insert(16401, ["NA", "2026-01-06", "-0.001", "added"])
    wire.commit()
    events = _assert_same(tmp_path, wire.messages)
    assert sum(1 for e in events if e[0] != "raised") == 8


def test_malformed_and_unconvertible_changes_raise_the_reference_errors(tmp_path):
    wire = _Wire()
    wire.relation(16402, "orders", WIDE[:6])
    wire.begin(950)
    good = ["1", "2", "3", "4.00", "5.00", "6"]
    wire.insert(16402, good)
    wire.insert(16402, good[:5])  # a column missing
    wire.insert(16402, [*good[:3], "NaN", "5.00", "6"])  # NaN in numeric(14,2)
    wire.insert(16402, [*good[:3], "1.005", "5.00", "6"])  # more decimals than the scale
    wire.insert(16402, [*good[:4], "1000.00", "6"])  # more digits than the precision
    wire.insert(16402, [*good[:3], "4.5", "5.00", "6"])  # fewer decimals than the scale
    wire.insert(16402, ["1", "x", *good[2:]])  # not an integer
    wire.insert(16402, [b"\x00\x01", *good[1:]])  # a binary column
    wire.insert(16402, [None, *good[1:]])  # a NULL key
    wire.relation(16404, "arrays", [("id", 20, -1, True), ("tags", 1009, -1, False)])
    wire.insert(16404, ["1", "{{a,b},{c,d}}"])  # two dimensions: not an array of strings
    wire.insert(16404, ["2", "{a,\"b"])  # malformed
    wire.relation(16403, "texts", [("id", 20, -1, True), ("t", 25, -1, False), ("d", 1082, -1, False)])
    wire.insert(16403, ["1", "ok", "infinity"])
    wire.insert(16403, ["1", "ok", "0044-03-15 BC"])
    wire.relation(16405, "stamps", [("id", 20, -1, True), ("at", 1184, -1, False), ("local", 1114, -1, False)])
    for at, local in [("2026-02-30 10:00:00+00", None), ("2026-01-01 24:00:00+00", None), ("infinity", None),
                      ("-infinity", None), ("0044-03-15 10:00:00+00 BC", None), ("12026-01-01 10:00:00+00", None),
                      ("2026-01-01 10:00:00", None), (None, "2026-01-01 10:00:00+00"), (None, "2026-02-30 10:00:00"),
                      ("2026-01-01 10:00:60+00", None), ("2026-01-01 10:00:00.1234567+00", None),
                      ("0001-01-01 00:00:00+05:30", None), ("9999-12-31 23:59:59-03", None)]:
        wire.insert(16405, ["1", at, local])
    raw = wire.tuple(["2", "ok", "2026-01-01"])
    wire.add(b"I" + struct.pack("!I", 16403) + b"N" + raw.replace(b"ok", b"\xff\xfe"))  # not UTF-8
    wire.add(b"I" + struct.pack("!I", 16403) + b"N" + raw[:-3])  # truncated
    wire.add(b"I" + struct.pack("!I", 16403) + b"N" + raw + b"\0")  # trailing byte
    wire.add(b"I" + struct.pack("!I", 16499) + b"N" + raw)  # unknown relation
    wire.commit()
    events = _assert_same(tmp_path, wire.messages)
    raised = [e for e in events if e[0] == "raised"]
    assert {e[1] for e in raised} >= {"DecodeError", "ValueConversionError", "ReplicationError"}
    # a conversion error names where the value was, not only what it was
    assert any("several dimensions" in e[2] and "column tags" in e[2] and "arrays" in e[2] for e in raised), raised
    assert len(raised) >= 10


@pytest.mark.parametrize("n", [0, 1, -1, 63, 64, -65, 8191, 8192, -8193, 2097151, 2097152, 268435455, 268435456,
                               1795640017123456, -1795640017123456, 2**62, 2**63 - 1, -(2**63)])
def test_encode_long_writes_avro_zigzag_varints(n):
    z = (n << 1) ^ (n >> 63)
    expected = bytearray()
    while z > 0x7F:
        expected.append((z & 0x7F) | 0x80)
        z >>= 7
    expected.append(z)
    assert encode_long(n) == bytes(expected)
    # the generated encoders' zig-zag, which remembers what it encoded outside its table: the same bytes twice
    assert _zigzag(n) == _zigzag(n) == bytes(expected)
    with pytest.raises(ValueError):
        encode_long(2**63)
    with pytest.raises(ValueError):
        _zigzag(2**63)


# --- REPLICA IDENTITY FULL: an unchanged TOASTed column's value comes from the old row ----------------------

# (name, type oid, typmod, key): the text, jsonb and bytea columns are the ones PostgreSQL TOASTs.
TOASTY = [("id", 20, -1, True), ("note", 25, -1, False), ("body", 25, -1, False), ("attrs", 3802, -1, False),
          ("blob", 17, -1, False)]
BODY = "".join(random.Random(5000).choices("abcdefghijklmnopqrstuvwxyz0123456789", k=5000))
ATTRS = '{"tags": ["a", "b"]}'
BLOB = "\\x" + "ab" * 3000


def _envelopes(events: list) -> list[tuple[dict | None, str | None, list | None]]:
    """(after, op, unchanged_toasted) per event, decoded with fastavro; (None, None, None) for a tombstone."""
    specs = [ColumnSpec(n, oid, typmod, key) for n, oid, typmod, key in TOASTY]
    schema = fastavro.parse_schema(value_schema("crm.public.docs", specs))
    out = []
    for _topic, _key, value, _headers in events:
        if value is None:
            out.append((None, None, None))
            continue
        record = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
        out.append((record["after"], record["op"], record["unchanged_toasted"]))
    return out


def _toast_updates(identity: bytes) -> _Wire:
    """An update of another column, a key change, and an old row without the value, under ``identity``."""
    full = identity == b"f"
    wire = _Wire()
    # Under FULL pgoutput flags every column as identity; the capture keys events by the primary key.
    wire.relation(16410, "docs", [(n, o, t, key or full) for n, o, t, key in TOASTY], identity=identity)
    wire.begin(1000)
    wire.insert(16410, ["1", "draft", BODY, ATTRS, BLOB])
    old = ["1", "draft", BODY, ATTRS, BLOB] if full else None
    wire.update(16410, ["1", "final", U, U, U], old=old)
    if full:
        wire.update(16410, ["2", "final", U, U, U], old=["1", "final", BODY, ATTRS, BLOB])
        # An old row that does not hold the value itself ('u', or null) carries nothing.
        wire.update(16410, ["2", "again", U, U, "\\x00"], old=["2", "final", U, None, BLOB])
    else:
        wire.update(16410, ["2", "final", U, U, U], key=["1", None, None, None, None])
    wire.commit()
    return wire


def test_full_identity_carries_an_unchanged_toasted_value_from_the_old_row_on_both_paths(tmp_path):
    slow: list = []
    events = _assert_same(tmp_path, _toast_updates(b"f").messages, slow)
    assert slow == []  # the fast path took every change (and matched the reference path's bytes)
    decoded = _envelopes(events)
    assert [op for _, op, _ in decoded] == ["c", "u", "d", None, "c", "u"]
    carried = {"body": BODY, "attrs": ATTRS, "blob": bytes.fromhex("ab" * 3000)}
    # an update of another column: the `u` holds the values and names none of them
    after, _, unchanged = decoded[1]
    assert after == {"id": 1, "note": "final", **carried} and unchanged == []
    # a primary-key change: the new key's `c` holds them (consumers have no previous value under key 2)
    after, _, unchanged = decoded[4]
    assert after == {"id": 2, "note": "final", **carried} and unchanged == []
    after, _, unchanged = decoded[5]
    assert after == {"id": 2, "note": "again", "body": None, "attrs": None, "blob": b"\x00"}
    assert unchanged == ["body", "attrs"]


def test_full_identity_carries_the_old_value_in_a_streamed_transaction_too(tmp_path):
    wire = _Wire()
    wire.relation(16410, "docs", [(n, o, t, True) for n, o, t, _ in TOASTY], identity=b"f")
    xid = struct.pack("!I", 1001)
    old = wire.tuple(["1", "draft", BODY, ATTRS, BLOB])
    wire.add(b"S" + struct.pack("!IB", 1001, 1))
    wire.add(b"U" + xid + struct.pack("!I", 16410) + b"O" + old + b"N" + wire.tuple(["1", "final", U, U, U]))
    wire.add(b"U" + xid + struct.pack("!I", 16410) + b"O" + old + b"N" + wire.tuple(["3", "final", U, U, U]))
    wire.add(b"E")
    wire.add(b"c" + struct.pack("!IBQQq", 1001, 0, wire.lsn + 0x10, wire.lsn + 0x18, 849_000_000_000_000))
    slow: list = []
    decoded = _envelopes(_assert_same(tmp_path, wire.messages, slow))
    assert slow == []
    assert [(op, after and after["body"] == BODY, unchanged) for after, op, unchanged in decoded] == [
        ("u", True, []), ("d", None, []), (None, None, None), ("c", True, [])]


def test_every_streamed_event_carries_its_transactions_commit_and_its_own_position_on_both_paths(tmp_path):
    # streams/position.py: <origin>,<commit_lsn>,<change_lsn>; the commit LSN is the Begin's final LSN
    wire = _toast_updates(b"f")
    begin = next(lsn for lsn, payload in wire.messages if payload[:1] == b"B")
    final_lsn = struct.unpack_from("!Q", next(p for _, p in wire.messages if p[:1] == b"B"), 1)[0]
    changes = [lsn for lsn, payload in wire.messages if payload[:1] in (b"I", b"U", b"D") and lsn > begin]
    events = _assert_same(tmp_path, wire.messages)
    expected = [[(position.HEADER, b"%s,%d,%d" % (ORIGIN, final_lsn, lsn))] for lsn in changes]
    # insert, update, key change (delete, tombstone, create), update; every event of a change shares its position
    assert [e[3] for e in events] == [expected[0], expected[1], *[expected[2]] * 3, expected[3]]
    assert position.of(events[0][3]) == (ORIGIN.decode(), final_lsn, changes[0])


def test_a_streamed_transaction_carries_its_commit_position_though_it_was_sent_before_its_commit(tmp_path):
    wire = _Wire()
    wire.relation(16410, "docs", [(n, o, t, key) for n, o, t, key in TOASTY])
    xid = struct.pack("!I", 1001)
    wire.add(b"S" + struct.pack("!IB", 1001, 1))
    wire.add(b"I" + xid + struct.pack("!I", 16410) + b"N" + wire.tuple(["1", "draft", "b", "{}", None]))
    first = wire.lsn
    wire.add(b"E")
    commit_lsn = wire.lsn + 0x10
    wire.add(b"c" + struct.pack("!IBQQq", 1001, 0, commit_lsn, commit_lsn + 8, 849_000_000_000_000))
    events = _assert_same(tmp_path, wire.messages)
    assert [e[3] for e in events] == [[(position.HEADER, b"%s,%d,%d" % (ORIGIN, commit_lsn, first))]]


def test_default_identity_still_marks_an_unchanged_toasted_column_without_a_value(tmp_path):
    events = _assert_same(tmp_path, _toast_updates(b"d").messages)
    decoded = _envelopes(events)
    assert [op for _, op, _ in decoded] == ["c", "u", "d", None, "c"]
    for i, key in ((1, 1), (4, 2)):
        after, _, unchanged = decoded[i]
        assert after == {"id": key, "note": "final", "body": None, "attrs": None, "blob": None}
        assert unchanged == ["body", "attrs", "blob"]
