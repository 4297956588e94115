"""The replication connection: slot, START_REPLICATION and the COPY BOTH stream.

Driven at psycopg's libpq layer (``pgconn.get_copy_data`` /
``put_copy_data``), as the streaming replication protocol asks:
https://www.postgresql.org/docs/15/protocol-replication.html

* ``XLogData`` ('w'): start LSN, end LSN, server clock, then one pgoutput
  message.
* ``Primary keepalive`` ('k'): the server's sent position and whether it
  wants an answer now.
* ``Standby status update`` ('r'): written / flushed / applied LSN. psmesh
  reports as *flushed* only what :class:`streams.offsets.FlushTracker` allows,
  i.e. what Kafka has acknowledged: PostgreSQL may recycle WAL up to it.
"""

from __future__ import annotations

import logging
import select
import struct
import time
from dataclasses import dataclass

import psycopg
from psycopg import pq

from streams.exceptions import ReplicationError
from streams.lsn import Lsn

logger = logging.getLogger(__name__)

_XLOGDATA = struct.Struct(">QQq")
_KEEPALIVE = struct.Struct(">Qq?")
_STATUS = struct.Struct(">cQQQq?")
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds


def now_pg_us() -> int:
    return time.time_ns() // 1000 - PG_EPOCH_US


@dataclass(frozen=True, slots=True)
class XLogData:
    wal_start: int
    wal_end: int
    server_time_us: int
    payload: memoryview


@dataclass(frozen=True, slots=True)
class Keepalive:
    wal_end: int
    server_time_us: int
    reply_requested: bool


class ReplicationStream:
    """One ``replication=database`` connection streaming a logical slot."""

    def __init__(self, dsn: str) -> None:
        try:
            # UTC and ISO output make the text values cheap and unambiguous to parse (streams.pgtypes). pgoutput sends
            # text in the client encoding, the database's by default: UTF8, which the decoder reads, whatever the
            # database's is (a LATIN1 source stopped at its first accented character).
            self.conn = psycopg.connect(
                dsn, replication="database", autocommit=True, client_encoding="UTF8",
                options="-c TimeZone=UTC -c DateStyle=ISO -c bytea_output=hex -c extra_float_digits=3",
            )
        except psycopg.Error as exc:
            raise ReplicationError(f"cannot open a replication connection: {exc}") from exc
        self.pg = self.conn.pgconn
        try:
            row = self.conn.execute("IDENTIFY_SYSTEM").fetchone()
        except psycopg.Error as exc:
            self.conn.close()
            raise ReplicationError(f"cannot identify the server: {exc}") from exc
        assert row is not None
        #: the cluster's system identifier and its timeline: where the stream's WAL positions mean anything
        self.system_identifier, self.timeline = str(row[0]), int(row[1])
        #: where the server's WAL ends (flushed) when the connection opened
        self.wal_end = Lsn.parse(row[2])

    def create_slot(self, slot: str, temporary: bool = False) -> tuple[int, str]:
        """Create the pgoutput slot and export its snapshot: (consistent point, snapshot name).

        The snapshot holds exactly the transactions whose commit record is
        before the consistent point; the slot streams those committed at or
        after it. The snapshot stays valid until this connection runs another
        command, so the snapshotter must read it before :meth:`start`. A
        ``temporary`` slot is dropped when this connection closes (or dies).
        """
        kind = "TEMPORARY LOGICAL" if temporary else "LOGICAL"
        try:
            row = self.conn.execute(f'CREATE_REPLICATION_SLOT "{slot}" {kind} pgoutput (SNAPSHOT \'export\')').fetchone()
        except psycopg.Error as exc:
            raise ReplicationError(f"cannot create replication slot {slot}: {exc}") from exc
        assert row is not None
        return Lsn.parse(row[1]), row[2]

    def start(self, slot: str, publication: str, start_lsn: int = 0, proto_version: int = 2) -> None:
        options = f"proto_version '{proto_version}', publication_names '{publication}', messages 'true'"
        if proto_version >= 2:
            # Stream in-progress transactions so a huge one never has to fit in memory.
            options += ", streaming 'on'"
        query = f'START_REPLICATION SLOT "{slot}" LOGICAL {Lsn(start_lsn)} ({options})'
        self.pg.send_query(query.encode())
        self.pg.flush()
        while True:
            self.pg.consume_input()
            if not self.pg.is_busy():
                break
            select.select([self.pg.socket], [], [], 1.0)
        result = self.pg.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            message = result.error_message.decode(errors="replace") if result is not None else "no result"
            raise ReplicationError(f"START_REPLICATION on slot {slot} failed: {message.strip()}")
        logger.info("streaming slot %s from %s (pgoutput v%d)", slot, Lsn(start_lsn), proto_version)

    def read(self, timeout: float) -> XLogData | Keepalive | None:
        """The next message, or None after ``timeout`` seconds without one."""
        data = self.read_raw(timeout)
        return None if data is None else self.parse(data)

    def read_raw(self, timeout: float) -> memoryview | bytes | None:
        """The next CopyData message as received ('w' XLogData, 'k' keepalive), or None after ``timeout``.

        The capture's hot loop reads XLogData headers itself (start and end LSN at offsets 1 and 9,
        the pgoutput message from offset 25) and passes the rest to :meth:`parse`.
        """
        n, data = self.pg.get_copy_data(1)
        if n == 0:
            ready, _, _ = select.select([self.pg.socket], [], [], timeout)
            if not ready:
                return None
            self.pg.consume_input()
            n, data = self.pg.get_copy_data(1)
            if n == 0:
                return None
        if n < 0:
            error = self.pg.error_message.decode(errors="replace").strip()
            raise ReplicationError(f"replication stream ended: {error or 'server closed the copy'}")
        return data

    @staticmethod
    def parse(data: memoryview | bytes) -> XLogData | Keepalive:
        kind = data[0]
        if kind == 0x77:  # 'w'
            start, end, clock = _XLOGDATA.unpack_from(data, 1)
            return XLogData(start, end, clock, memoryview(data)[25:])
        if kind == 0x6B:  # 'k'
            end, clock, reply = _KEEPALIVE.unpack_from(data, 1)
            return Keepalive(end, clock, reply)
        raise ReplicationError(f"unexpected copy message {chr(kind)!r} on the replication stream")

    def send_status(self, written: int, flushed: int, reply: bool = False) -> None:
        """Standby status update: ``flushed`` is the position PostgreSQL may forget WAL up to."""
        message = _STATUS.pack(b"r", written, flushed, flushed, now_pg_us(), reply)
        if self.pg.put_copy_data(message) != 1:
            raise ReplicationError(f"cannot send standby status: {self.pg.error_message.decode(errors='replace')}")
        self.pg.flush()

    def close(self) -> None:
        self.conn.close()
