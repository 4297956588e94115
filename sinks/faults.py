"""Which failures are the record's fault, which are the target's, and which are fatal.

Classified by exception type and SQLSTATE class, never by message text
(PostgreSQL manual, appendix A "PostgreSQL Error Codes"):

* transient, retried with backoff: no SQLSTATE at all (the client could not
  connect or lost the connection), 08 connection exception, 40 transaction
  rollback (serialization failure, deadlock), 53 insufficient resources,
  57 operator intervention (admin shutdown, cannot connect now), 58 system
  error, 55P03 lock not available; and SQLAlchemy's pool timeout.
* the record's fault, dead-lettered: 21 cardinality violation, 22 data
  exception (value too long, numeric out of range, invalid date), 23 integrity
  constraint violation (not null, unique, check), 54000 program limit exceeded
  (a key too long for its index), P0001 an exception the target's own trigger
  raised on the row (the ERP's validation); and a bind parameter that cannot
  be adapted on the client side.
* fatal, the sink stops: everything else (42 undefined table or column, 28
  authentication, 3D000 unknown database) — a setup problem that dead-lettering
  every record would only hide.
"""

from __future__ import annotations

import enum

from sqlalchemy import exc as sa_exc

TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
TRANSIENT_STATES = frozenset({"55P03"})
RECORD_CLASSES = frozenset({"21", "22", "23"})
RECORD_STATES = frozenset({"54000", "P0001"})


class Fault(enum.Enum):
    TRANSIENT = "transient"
    RECORD = "record"
    FATAL = "fatal"


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error (wrapped by SQLAlchemy or not), if the server sent one."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None)


def classify(exc: BaseException) -> Fault:
    """How the runner must react to ``exc`` raised while writing a batch."""
    if isinstance(exc, sa_exc.TimeoutError):
        return Fault.TRANSIENT
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return Fault.TRANSIENT
        state = sqlstate(exc)
        if state is None:
            # No SQLSTATE: the failure happened on the client side of the wire
            # (connect refused, server closed the connection).
            return Fault.TRANSIENT if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) else Fault.RECORD
        if state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES:
            return Fault.TRANSIENT
        if state[:2] in RECORD_CLASSES or state in RECORD_STATES:
            return Fault.RECORD
        return Fault.FATAL
    if isinstance(exc, sa_exc.StatementError):
        # Raised before the statement reached the server: a parameter could not be bound.
        return Fault.RECORD
    return Fault.FATAL


#: SQLSTATE classes of a failed connection: 08 connection exception, 28 invalid authorization, 3D invalid catalog
#: name (no such database).
CONNECTION_CLASSES = frozenset({"08", "28", "3D"})


def describe(exc: BaseException) -> str:
    """A reason for logs and dead letters: the error type and SQLSTATE, without row values."""
    orig = getattr(exc, "orig", None) or exc
    state = sqlstate(exc)
    name = type(orig).__name__
    diag = getattr(orig, "diag", None)
    where = []
    if diag is not None:
        for part in ("table_name", "column_name", "constraint_name"):
            value = getattr(diag, part, None)
            if value:
                where.append(f"{part.split('_')[0]} {value}")
    text = f"{name} (SQLSTATE {state})" if state else name
    if state is None or state[:2] in CONNECTION_CLASSES:
        # Reaching the server failed (refused, unknown host, wrong password, no such database): libpq's own message
        # says where and why, and carries no row values (nor the password).
        reason = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        if reason:
            where.insert(0, reason)
    return f"{text}: {', '.join(where)}" if where else text
