"""Pure decoder of PostgreSQL's ``pgoutput`` logical replication messages.

Bytes in, frozen dataclasses out, no I/O: :class:`PgOutputDecoder` turns the
payload of one ``XLogData`` (or one ``data`` row of
``pg_logical_slot_get_binary_changes``) into one message object. It
implements the formats of protocol versions 1 and 2 as documented in
https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html:
Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate,
Message, and (version 2) Stream Start, Stream Stop, Stream Commit, Stream
Abort. Two-phase messages (protocol 3) and the abort LSN/timestamp of
protocol 4 are not implemented: they raise :class:`DecodeError` like any
unknown type, so a slot created with those options fails loudly instead of
being misread.

Contracts:

* The decoder holds exactly one piece of state, whether it is inside a
  Stream Start .. Stream Stop block: in protocol 2 the Relation, Type,
  Insert, Update, Delete, Truncate and Message messages of a block carry an
  xid (int32) right after the type byte, and only there. That xid is the
  *subtransaction's* when the change was made under a savepoint (captured
  from PostgreSQL 15: it differs from the Stream Start xid), which is what a
  Stream Abort's ``subxid`` refers to: on a Stream Abort, discard the
  streamed changes whose ``xid`` equals ``subxid`` (all of the transaction's
  when ``subxid == xid``). Feed it every message of a replication session in order; create a
  new decoder (or call :meth:`PgOutputDecoder.reset`) when the session is
  restarted. Block transitions are guarded: a Stream Stop without a Start, a
  nested Start, or a Begin/Commit inside a block is a :class:`DecodeError`.
* Decoding never depends on earlier Relation messages; mapping relation ids
  to columns is the caller's job (:class:`RelationCache` helps).
* Tuple column values are ``None`` (SQL NULL, ``'n'``), :data:`UNCHANGED_TOAST`
  (``'u'``: a TOASTed value the update did not change and the server did not
  send; it is a marker, never to be replaced by a guess), ``str`` (``'t'``,
  the type's text output in the session's client encoding) or ``bytes``
  (``'b'``, binary send format). Turning text into Python values is
  :mod:`streams.pgtypes`'s job.
* Every malformed input (unknown type byte, truncated buffer, trailing bytes,
  unknown tuple column kind, bad encoding) raises :class:`DecodeError` naming
  the message type byte and the byte offset.

Speed: this is the capture's hot path (bench/decode_pgoutput.py measures
it). Fixed-size fields are read with precompiled :class:`struct.Struct`
objects via ``unpack_from``; variable-length values are sliced from one
``bytes`` object; the column loop runs once per column, never per byte; an
Insert outside a stream block, the commonest message, skips the dispatch.
A ``memoryview`` input is copied to ``bytes`` once per message: measured on
CPython 3.11, a ``bytes`` slice plus ``.decode()`` costs about half as much
as decoding a memoryview slice, and column values are short.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import ClassVar, Union

from streams.exceptions import DecodeError
from streams.lsn import Lsn

__all__ = [
    "UNCHANGED_TOAST",
    "Begin",
    "ColumnValue",
    "Commit",
    "Delete",
    "Insert",
    "LogicalMessage",
    "Message",
    "Origin",
    "PgOutputDecoder",
    "Relation",
    "RelationCache",
    "RelationColumn",
    "ReplicaIdentity",
    "StreamAbort",
    "StreamCommit",
    "StreamStart",
    "StreamStop",
    "Truncate",
    "TupleData",
    "Type",
    "Update",
    "pg_timestamp_to_datetime",
]


class _Unchanged(enum.Enum):
    # An enum member is a true singleton: it survives copy, deepcopy and pickle
    # as the same object, so `value is UNCHANGED_TOAST` is always safe.
    UNCHANGED_TOAST = "u"

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


#: Marker for a TOASTed column value the server did not send because the
#: update left it unchanged (TupleData kind ``'u'``).
UNCHANGED_TOAST = _Unchanged.UNCHANGED_TOAST

ColumnValue = Union[None, str, bytes, _Unchanged]
#: One row image: a value per column, in the Relation's column order.
TupleData = tuple[ColumnValue, ...]

# PostgreSQL timestamps count microseconds from 2000-01-01 00:00:00 UTC.
PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def pg_timestamp_to_datetime(microseconds: int) -> datetime:
    """A protocol timestamp (µs since 2000-01-01 UTC) as an aware UTC datetime."""
    return PG_EPOCH + timedelta(microseconds=microseconds)


class ReplicaIdentity(str, enum.Enum):
    """``pg_class.relreplident``: which old values UPDATE and DELETE carry."""

    DEFAULT = "d"  # primary key columns ('K' tuple when the key changes or on delete)
    NOTHING = "n"  # no old values at all
    FULL = "f"  # every column ('O' tuple)
    INDEX = "i"  # the columns of a chosen unique index ('K' tuple)


# --- messages -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    """Start of a (non-streamed) transaction."""

    TYPE: ClassVar[bytes] = b"B"
    final_lsn: Lsn  # LSN of the transaction's commit record
    commit_ts: int  # µs since 2000-01-01 UTC
    xid: int

    @property
    def commit_time(self) -> datetime:
        return pg_timestamp_to_datetime(self.commit_ts)


@dataclass(frozen=True, slots=True)
class Commit:
    """End of a transaction: confirm ``end_lsn`` once its events are durable."""

    TYPE: ClassVar[bytes] = b"C"
    flags: int  # currently always 0
    commit_lsn: Lsn
    end_lsn: Lsn  # end of the commit record: the position to confirm
    commit_ts: int

    @property
    def commit_time(self) -> datetime:
        return pg_timestamp_to_datetime(self.commit_ts)


@dataclass(frozen=True, slots=True)
class Origin:
    """The transaction was replayed from a replication origin (another node)."""

    TYPE: ClassVar[bytes] = b"O"
    commit_lsn: Lsn  # commit LSN on the origin server
    name: str


@dataclass(frozen=True, slots=True)
class RelationColumn:
    flags: int  # bit 1: part of the replica identity key
    name: str
    type_oid: int
    type_modifier: int  # atttypmod; -1 when the type has none

    @property
    def is_key(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True, slots=True)
class Relation:
    """A table's shape, sent before its first change in a session and after DDL.

    ``namespace`` is the schema name as sent; the protocol sends an empty
    string for ``pg_catalog``.
    """

    TYPE: ClassVar[bytes] = b"R"
    relation_id: int
    namespace: str
    name: str
    replica_identity: ReplicaIdentity
    columns: tuple[RelationColumn, ...]
    xid: int | None = None  # (sub)transaction xid; set only inside a protocol-2 stream block

    @property
    def key_columns(self) -> tuple[RelationColumn, ...]:
        return tuple(c for c in self.columns if c.flags & 1)


@dataclass(frozen=True, slots=True)
class Type:
    """A non-built-in data type used by a following Relation (enum, domain, ...)."""

    TYPE: ClassVar[bytes] = b"Y"
    type_oid: int
    namespace: str
    name: str
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Insert:
    TYPE: ClassVar[bytes] = b"I"
    relation_id: int
    new: TupleData
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """An update. At most one of ``key`` / ``old`` is set.

    ``key`` ('K'): the old replica identity key columns (other columns None),
    sent when the key changed (identity DEFAULT or INDEX). ``old`` ('O'): the
    whole old row (identity FULL). Neither: the key did not change, or the
    identity is NOTHING. In ``new``, :data:`UNCHANGED_TOAST` marks TOASTed
    columns the update left as they were; ``old`` holds their values (the
    server logs the old row of a FULL identity with TOASTed values inlined).
    """

    TYPE: ClassVar[bytes] = b"U"
    relation_id: int
    new: TupleData
    key: TupleData | None = None
    old: TupleData | None = None
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """A delete; exactly one of ``key`` ('K') or ``old`` ('O', identity FULL) is set."""

    TYPE: ClassVar[bytes] = b"D"
    relation_id: int
    key: TupleData | None = None
    old: TupleData | None = None
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Truncate:
    TYPE: ClassVar[bytes] = b"T"
    options: int  # bit 1: CASCADE, bit 2: RESTART IDENTITY
    relation_ids: tuple[int, ...]
    xid: int | None = None

    @property
    def cascade(self) -> bool:
        return bool(self.options & 1)

    @property
    def restart_identity(self) -> bool:
        return bool(self.options & 2)


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """A ``pg_logical_emit_message`` message (needs the ``messages`` option).

    A transactional message arrives inside its transaction at commit; a
    non-transactional one arrives at once, outside any Begin/Commit.
    """

    TYPE: ClassVar[bytes] = b"M"
    flags: int  # bit 1: transactional
    lsn: Lsn
    prefix: str
    content: bytes
    xid: int | None = None

    @property
    def transactional(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True, slots=True)
class StreamStart:
    """Opens a block of changes of an in-progress transaction (protocol 2)."""

    TYPE: ClassVar[bytes] = b"S"
    xid: int
    first_segment: bool  # the first block of this transaction


@dataclass(frozen=True, slots=True)
class StreamStop:
    TYPE: ClassVar[bytes] = b"E"


@dataclass(frozen=True, slots=True)
class StreamCommit:
    """A streamed transaction committed: its blocks' changes take effect."""

    TYPE: ClassVar[bytes] = b"c"
    xid: int
    flags: int
    commit_lsn: Lsn
    end_lsn: Lsn
    commit_ts: int

    @property
    def commit_time(self) -> datetime:
        return pg_timestamp_to_datetime(self.commit_ts)


@dataclass(frozen=True, slots=True)
class StreamAbort:
    """A streamed (sub)transaction aborted: drop its streamed changes.

    ``subxid == xid`` means the whole transaction; otherwise only the
    changes of subtransaction ``subxid`` (a ROLLBACK TO SAVEPOINT).
    """

    TYPE: ClassVar[bytes] = b"A"
    xid: int
    subxid: int

    @property
    def is_whole_transaction(self) -> bool:
        return self.xid == self.subxid


Message = Union[
    Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate,
    LogicalMessage, StreamStart, StreamStop, StreamCommit, StreamAbort,
]  # fmt: skip


# --- wire formats -----------------------------------------------------------
# Oids and xids are unsigned 32-bit, LSNs unsigned 64-bit, timestamps and
# type modifiers signed (typmod -1 = none).
_BEGIN = struct.Struct("!QqI")  # final LSN, commit ts, xid
_COMMIT = struct.Struct("!BQQq")  # flags, commit LSN, end LSN, commit ts
_U64 = struct.Struct("!Q")
_U32 = struct.Struct("!I")
_I32 = struct.Struct("!i")
_U16 = struct.Struct("!H")
_RELATION_HEAD = struct.Struct("!B H")  # replica identity, number of columns
_ATTR_TYPE = struct.Struct("!Ii")  # type oid, type modifier
_TRUNCATE_HEAD = struct.Struct("!IB")  # number of relations, options
_MESSAGE_HEAD = struct.Struct("!BQ")  # flags, LSN
_STREAM_START = struct.Struct("!IB")  # xid, first segment
_STREAM_COMMIT = struct.Struct("!IBQQq")  # xid, flags, commit LSN, end LSN, commit ts
_STREAM_ABORT = struct.Struct("!II")  # xid, subxid

_KIND_TEXT, _KIND_NULL, _KIND_UNCHANGED, _KIND_BINARY = b"t"[0], b"n"[0], b"u"[0], b"b"[0]
_KEY, _OLD, _NEW = b"K"[0], b"O"[0], b"N"[0]
_INSERT = b"I"[0]
_IDENTITIES = {ord(i.value): i for i in ReplicaIdentity}

# Messages that carry a transaction id after the type byte inside a stream block.
_STREAMABLE = frozenset(b"RYIUDTM")


class PgOutputDecoder:
    """Decodes pgoutput messages of one replication session, in order.

    ``protocol_version`` is the ``proto_version`` the slot was started with
    (1 or 2); stream messages under version 1 are a :class:`DecodeError`.
    ``encoding`` is the session's client encoding (text values and names).
    """

    def __init__(self, protocol_version: int = 2, encoding: str = "utf-8") -> None:
        if protocol_version not in (1, 2):
            raise ValueError(f"unsupported pgoutput protocol version {protocol_version}; expected 1 or 2")
        self.protocol_version = protocol_version
        self.encoding = encoding
        self._in_stream = False
        self._stream_xid: int | None = None
        self._parsers = {
            ord("B"): self._begin,
            ord("C"): self._commit,
            ord("O"): self._origin,
            ord("R"): self._relation,
            ord("Y"): self._type,
            ord("I"): self._insert,
            ord("U"): self._update,
            ord("D"): self._delete,
            ord("T"): self._truncate,
            ord("M"): self._message,
        }
        if protocol_version >= 2:
            self._parsers.update({
                ord("S"): self._stream_start,
                ord("E"): self._stream_stop,
                ord("c"): self._stream_commit,
                ord("A"): self._stream_abort,
            })  # fmt: skip

    @property
    def in_stream(self) -> bool:
        """True between a Stream Start and its Stream Stop."""
        return self._in_stream

    @property
    def stream_xid(self) -> int | None:
        """The xid of the open stream block, if any."""
        return self._stream_xid

    def reset(self) -> None:
        """Forget the stream-block state (a new replication session starts)."""
        self._in_stream = False
        self._stream_xid = None

    def decode(self, data: bytes | bytearray | memoryview) -> Message:
        """Decode one complete pgoutput message (starting at its type byte)."""
        buf = data if type(data) is bytes else bytes(data)
        if not buf:
            raise DecodeError("empty message", offset=0)
        kind = buf[0]
        if kind == _INSERT and not self._in_stream and len(buf) > 7 and buf[5] == _NEW:
            # Fast path for the commonest message, an Insert outside a stream
            # block (Byte1 'I', Int32 relation id, Byte1 'N', TupleData): the
            # same reads as _insert without its dispatch and checks.
            new, end = self._tuple(buf, 6)
            if end != len(buf):
                raise DecodeError(f"{len(buf) - end} trailing bytes after message", offset=end, type_byte=kind)
            return Insert(_U32.unpack_from(buf, 1)[0], new)
        parser = self._parsers.get(kind)
        if parser is None:
            if kind in (ord("S"), ord("E"), ord("c"), ord("A")):
                raise DecodeError(
                    f"stream message needs protocol version 2, decoder has {self.protocol_version}",
                    offset=0,
                    type_byte=kind,
                )
            raise DecodeError("unknown message type", offset=0, type_byte=kind)
        try:
            message, end = parser(buf)
        except DecodeError:
            raise
        except (struct.error, IndexError) as exc:
            # Only fixed-size reads land here: the parsers check variable-length
            # fields themselves and report the exact offset.
            raise DecodeError(f"message truncated ({len(buf)} bytes)", offset=len(buf), type_byte=kind) from exc
        if end != len(buf):
            raise DecodeError(f"{len(buf) - end} trailing bytes after message", offset=end, type_byte=kind)
        return message

    # -- helpers ---------------------------------------------------------------

    def _string(self, buf: bytes, pos: int) -> tuple[str, int]:
        """A NUL-terminated string at ``pos``; returns it and the offset after the NUL."""
        try:
            end = buf.index(0, pos)
        except ValueError:
            raise DecodeError("unterminated string", offset=pos, type_byte=buf[0]) from None
        try:
            return buf[pos:end].decode(self.encoding), end + 1
        except UnicodeDecodeError as exc:
            raise DecodeError(f"string is not valid {self.encoding}", offset=pos, type_byte=buf[0]) from exc

    def _fixed(self, fmt: struct.Struct, buf: bytes, pos: int) -> tuple:
        if pos + fmt.size > len(buf):
            raise DecodeError(
                f"message truncated: {fmt.size} bytes needed, {len(buf) - pos} left", offset=pos, type_byte=buf[0]
            )
        return fmt.unpack_from(buf, pos)

    def _xid(self, buf: bytes) -> tuple[int | None, int]:
        """The streamed transaction's xid of a message inside a stream block."""
        if self._in_stream:
            return self._fixed(_U32, buf, 1)[0], 5
        return None, 1

    def _tuple(self, buf: bytes, pos: int) -> tuple[TupleData, int]:
        """TupleData at ``pos``: Int16 column count, then per column a kind byte
        ('n' null, 'u' unchanged TOAST, 't' text, 'b' binary) and, for 't'/'b',
        Int32 length + bytes."""
        size = len(buf)
        if pos + 2 > size:
            raise DecodeError("tuple truncated before its column count", offset=pos, type_byte=buf[0])
        ncols = (buf[pos] << 8) | buf[pos + 1]
        pos += 2
        # Preallocated list filled by index: measurably faster than append,
        # and NULL columns (already None) cost one comparison.
        values: list[ColumnValue] = [None] * ncols
        unpack_len = _I32.unpack_from
        encoding = self.encoding
        begin = pos
        try:
            for i in range(ncols):
                kind = buf[pos]  # pos is the column's first byte until it is read whole
                if kind == _KIND_TEXT:
                    begin = pos + 5
                    pos = begin + unpack_len(buf, pos + 1)[0]
                    if not begin <= pos <= size:
                        raise DecodeError("column value truncated", offset=begin - 5, type_byte=buf[0])
                    values[i] = buf[begin:pos].decode(encoding)
                elif kind == _KIND_NULL:
                    pos += 1
                elif kind == _KIND_UNCHANGED:
                    values[i] = UNCHANGED_TOAST
                    pos += 1
                elif kind == _KIND_BINARY:
                    begin = pos + 5
                    pos = begin + unpack_len(buf, pos + 1)[0]
                    if not begin <= pos <= size:
                        raise DecodeError("column value truncated", offset=begin - 5, type_byte=buf[0])
                    values[i] = buf[begin:pos]
                else:
                    raise DecodeError(f"unknown tuple column kind 0x{kind:02x}", offset=pos, type_byte=buf[0])
        except (IndexError, struct.error):
            raise DecodeError("tuple truncated", offset=pos, type_byte=buf[0]) from None
        except UnicodeDecodeError as exc:
            raise DecodeError(f"column value is not valid {encoding}", offset=begin - 5, type_byte=buf[0]) from exc
        return tuple(values), pos

    def _tuple_tagged(self, buf: bytes, pos: int, expected: int) -> tuple[TupleData, int]:
        if pos >= len(buf):
            raise DecodeError(f"message truncated before {chr(expected)!r} tuple", offset=pos, type_byte=buf[0])
        if buf[pos] != expected:
            raise DecodeError(
                f"expected {chr(expected)!r} tuple, got byte 0x{buf[pos]:02x}", offset=pos, type_byte=buf[0]
            )
        return self._tuple(buf, pos + 1)

    # -- transaction framing ---------------------------------------------------

    def _outside_stream(self, buf: bytes) -> None:
        if self._in_stream:
            raise DecodeError(
                f"message not allowed inside the stream block of xid {self._stream_xid}", offset=0, type_byte=buf[0]
            )

    def _begin(self, buf: bytes) -> tuple[Begin, int]:
        self._outside_stream(buf)
        final_lsn, ts, xid = self._fixed(_BEGIN, buf, 1)
        return Begin(Lsn(final_lsn), ts, xid), 1 + _BEGIN.size

    def _commit(self, buf: bytes) -> tuple[Commit, int]:
        self._outside_stream(buf)
        flags, commit_lsn, end_lsn, ts = self._fixed(_COMMIT, buf, 1)
        return Commit(flags, Lsn(commit_lsn), Lsn(end_lsn), ts), 1 + _COMMIT.size

    def _origin(self, buf: bytes) -> tuple[Origin, int]:
        (lsn,) = self._fixed(_U64, buf, 1)
        name, pos = self._string(buf, 9)
        return Origin(Lsn(lsn), name), pos

    # -- schema ----------------------------------------------------------------

    def _relation(self, buf: bytes) -> tuple[Relation, int]:
        xid, pos = self._xid(buf)
        (relation_id,) = self._fixed(_U32, buf, pos)
        namespace, pos = self._string(buf, pos + 4)
        name, pos = self._string(buf, pos)
        identity_byte, ncols = self._fixed(_RELATION_HEAD, buf, pos)
        identity = _IDENTITIES.get(identity_byte)
        if identity is None:
            raise DecodeError(f"unknown replica identity 0x{identity_byte:02x}", offset=pos, type_byte=buf[0])
        pos += _RELATION_HEAD.size
        columns = []
        for _ in range(ncols):
            if pos >= len(buf):
                raise DecodeError("relation column truncated", offset=pos, type_byte=buf[0])
            flags = buf[pos]
            column_name, pos = self._string(buf, pos + 1)
            type_oid, typmod = self._fixed(_ATTR_TYPE, buf, pos)
            pos += _ATTR_TYPE.size
            columns.append(RelationColumn(flags, column_name, type_oid, typmod))
        return Relation(relation_id, namespace, name, identity, tuple(columns), xid), pos

    def _type(self, buf: bytes) -> tuple[Type, int]:
        xid, pos = self._xid(buf)
        (type_oid,) = self._fixed(_U32, buf, pos)
        namespace, pos = self._string(buf, pos + 4)
        name, pos = self._string(buf, pos)
        return Type(type_oid, namespace, name, xid), pos

    # -- changes ---------------------------------------------------------------

    def _insert(self, buf: bytes) -> tuple[Insert, int]:
        if self._in_stream:
            xid, relation_id = self._fixed(_STREAM_ABORT, buf, 1)  # two uint32s: xid, relation id
            pos = 9
        else:
            xid = None
            (relation_id,) = self._fixed(_U32, buf, 1)
            pos = 5
        new, pos = self._tuple_tagged(buf, pos, _NEW)
        return Insert(relation_id, new, xid), pos

    def _update(self, buf: bytes) -> tuple[Update, int]:
        xid, pos = self._xid(buf)
        (relation_id,) = self._fixed(_U32, buf, pos)
        pos += 4
        key = old = None
        if pos < len(buf) and buf[pos] == _KEY:
            key, pos = self._tuple(buf, pos + 1)
        elif pos < len(buf) and buf[pos] == _OLD:
            old, pos = self._tuple(buf, pos + 1)
        new, pos = self._tuple_tagged(buf, pos, _NEW)
        return Update(relation_id, new, key, old, xid), pos

    def _delete(self, buf: bytes) -> tuple[Delete, int]:
        xid, pos = self._xid(buf)
        (relation_id,) = self._fixed(_U32, buf, pos)
        pos += 4
        if pos < len(buf) and buf[pos] == _OLD:
            old, pos = self._tuple(buf, pos + 1)
            return Delete(relation_id, None, old, xid), pos
        key, pos = self._tuple_tagged(buf, pos, _KEY)
        return Delete(relation_id, key, None, xid), pos

    def _truncate(self, buf: bytes) -> tuple[Truncate, int]:
        xid, pos = self._xid(buf)
        nrels, options = self._fixed(_TRUNCATE_HEAD, buf, pos)
        pos += _TRUNCATE_HEAD.size
        ids = self._fixed(struct.Struct(f"!{nrels}I"), buf, pos)
        return Truncate(options, ids, xid), pos + 4 * nrels

    def _message(self, buf: bytes) -> tuple[LogicalMessage, int]:
        xid, pos = self._xid(buf)
        flags, lsn = self._fixed(_MESSAGE_HEAD, buf, pos)
        prefix, pos = self._string(buf, pos + _MESSAGE_HEAD.size)
        (length,) = self._fixed(_U32, buf, pos)
        pos += 4
        if pos + length > len(buf):
            raise DecodeError("message content truncated", offset=pos, type_byte=buf[0])
        return LogicalMessage(flags, Lsn(lsn), prefix, buf[pos : pos + length], xid), pos + length

    # -- protocol 2: streamed transactions ---------------------------------------

    def _stream_start(self, buf: bytes) -> tuple[StreamStart, int]:
        if self._in_stream:
            raise DecodeError(
                f"stream start inside the open stream block of xid {self._stream_xid}", offset=0, type_byte=buf[0]
            )
        xid, first = self._fixed(_STREAM_START, buf, 1)
        self._in_stream = True
        self._stream_xid = xid
        return StreamStart(xid, first == 1), 1 + _STREAM_START.size

    def _stream_stop(self, buf: bytes) -> tuple[StreamStop, int]:
        if not self._in_stream:
            raise DecodeError("stream stop without a stream start", offset=0, type_byte=buf[0])
        self._in_stream = False
        self._stream_xid = None
        return StreamStop(), 1

    def _stream_commit(self, buf: bytes) -> tuple[StreamCommit, int]:
        self._outside_stream(buf)
        xid, flags, commit_lsn, end_lsn, ts = self._fixed(_STREAM_COMMIT, buf, 1)
        return StreamCommit(xid, flags, Lsn(commit_lsn), Lsn(end_lsn), ts), 1 + _STREAM_COMMIT.size

    def _stream_abort(self, buf: bytes) -> tuple[StreamAbort, int]:
        self._outside_stream(buf)
        xid, subxid = self._fixed(_STREAM_ABORT, buf, 1)
        return StreamAbort(xid, subxid), 1 + _STREAM_ABORT.size


class RelationCache:
    """Relation id → latest :class:`Relation` of the session.

    pgoutput sends a Relation before the first change of a table in a session
    and again after its schema changes, so the latest message wins. A change
    for an unknown relation id means messages were lost or reordered: that is
    a ``KeyError`` naming the id, never a guess.
    """

    def __init__(self) -> None:
        self._relations: dict[int, Relation] = {}

    def add(self, relation: Relation) -> Relation | None:
        """Remember ``relation``; returns the shape it replaces, if any."""
        previous = self._relations.get(relation.relation_id)
        self._relations[relation.relation_id] = relation
        return previous

    def __getitem__(self, relation_id: int) -> Relation:
        try:
            return self._relations[relation_id]
        except KeyError:
            raise KeyError(f"no Relation message received for relation id {relation_id}") from None

    def get(self, relation_id: int) -> Relation | None:
        return self._relations.get(relation_id)

    def __contains__(self, relation_id: object) -> bool:
        return relation_id in self._relations

    def __len__(self) -> int:
        return len(self._relations)

    def clear(self) -> None:
        self._relations.clear()
