"""Bounded-memory buffering of streamed (in-progress) transactions.

With pgoutput protocol 2 and ``streaming 'on'``, PostgreSQL sends the changes
of a transaction larger than ``logical_decoding_work_mem`` before it commits,
in Stream Start/Stop blocks, and says later whether it committed or aborted.
Publishing them early would publish changes that may roll back, so each
streamed transaction is appended to a file of its own and replayed, in order,
at its Stream Commit; an abort deletes the file (or skips the aborted
subtransaction's records). Memory stays bounded whatever the transaction's size.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path
from typing import Iterator

_RECORD = struct.Struct(">IQI")  # xid of the (sub)transaction, WAL start LSN, payload length


class SpilledTransaction:
    def __init__(self, directory: Path, xid: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"xid-{xid}-", suffix=".spill", dir=directory)
        self.path = Path(name)
        self._fh = os.fdopen(fd, "w+b", buffering=1 << 20)
        self.xid = xid
        self.aborted: set[int] = set()
        self.records = 0
        self.bytes = 0

    def append(self, xid: int, wal_start: int, payload: bytes | memoryview) -> None:
        self._fh.write(_RECORD.pack(xid, wal_start, len(payload)))
        self._fh.write(payload)
        self.records += 1
        self.bytes += len(payload)

    def abort_subtransaction(self, subxid: int) -> None:
        self.aborted.add(subxid)

    def replay(self) -> Iterator[tuple[int, int, bytes]]:
        """(xid, wal_start, payload) in arrival order, skipping aborted subtransactions."""
        self._fh.flush()
        self._fh.seek(0)
        read = self._fh.read
        size = _RECORD.size
        while header := read(size):
            xid, wal_start, length = _RECORD.unpack(header)
            payload = read(length)
            if xid not in self.aborted:
                yield xid, wal_start, payload

    def discard(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)
