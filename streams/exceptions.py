"""Errors raised by the capture package (``streams``).

Every error of the package derives from :class:`StreamsError`, so a caller can
tell the capture's own failures from library errors, which are wrapped with
``raise ... from``. Messages name positions, types and tables, never a row
value (values may be personal or confidential data and messages reach logs).
"""

from __future__ import annotations


class StreamsError(Exception):
    """Base class of every error raised by the capture package."""


class DecodeError(StreamsError):
    """A pgoutput message could not be decoded.

    ``offset`` is the byte offset inside the message where decoding failed;
    ``type_byte`` is the message's first byte (``None`` for an empty buffer).
    """

    def __init__(self, reason: str, *, offset: int, type_byte: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        self.type_byte = type_byte
        if type_byte is None:
            where = f"at offset {offset}"
        else:
            shown = chr(type_byte) if 0x20 <= type_byte < 0x7F else "?"
            where = f"in message type {shown!r} (0x{type_byte:02x}) at offset {offset}"
        super().__init__(f"{reason} {where}")


class ValueConversionError(StreamsError, ValueError):
    """A column's text value has no faithful Python value (e.g. date 'infinity').

    The message names the PostgreSQL type and the reason; the offending text
    is kept on ``text`` for the dead-letter record, never in the message.
    """

    def __init__(self, type_name: str, reason: str, text: str | None = None) -> None:
        self.type_name = type_name
        self.reason = reason
        self.text = text
        super().__init__(f"cannot convert {type_name} value: {reason}")


class ReplicationError(StreamsError):
    """The replication connection or stream failed (slot, START_REPLICATION, copy)."""


class RegistryUnavailable(StreamsError):
    """The schema registry could not be reached, or failed (5xx), while a table's schema was being registered.

    Nothing with that schema was published and the slot was not confirmed past it: the capture resumes from its
    slot once the registry answers, as after a lost PostgreSQL connection."""


class SchemaRefused(StreamsError):
    """The registry refused a table's new schema under the subject's compatibility rule.

    Nothing is published with it, and that table's capture stops while the source's other tables go on. In the
    stream, its changes stay in the slot, which is confirmed no further (``CaptureSource._hold``); in a snapshot,
    it stays owed its snapshot, taken once the rule accepts the schema (``CaptureSource._hold_snapshot``).
    """

    def __init__(self, table: str, subject: str, columns: list[str], rule: str, detail: str) -> None:
        self.table = table
        self.subject = subject
        self.columns = columns
        self.rule = rule
        named = ", ".join(columns) if columns else "(no single column)"
        super().__init__(
            f"table {table}: schema change refused by the registry under {rule} compatibility "
            f"(subject {subject}); column(s): {named}; {detail}"
        )


class SchemaNowAccepted(StreamsError):
    """The registry now accepts the schema of a table whose capture a refusal stopped: the run ends so that the next
    one, from the slot, publishes the changes that were held (``psmesh cdc run`` starts it at once)."""


class UnencodableValue(StreamsError, ValueError):
    """A column's value has no representation in the column's Avro type (``NaN`` in a ``numeric(p,s)``, whose
    Avro type is a decimal). The capture stops before publishing the change, so nothing is lost: the message
    names the table, the column and where the change is (its LSN and transaction, or the snapshot)."""

    def __init__(self, table: str, column: str, reason: str, where: str) -> None:
        self.table = table
        self.column = column
        self.reason = reason
        super().__init__(f"table {table}, column {column}: {reason}; {where}")
