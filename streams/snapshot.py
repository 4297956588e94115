"""The initial snapshot: every existing row as an op 'r' event, consistent with the slot.

It reads inside the snapshot that ``CREATE_REPLICATION_SLOT ... SNAPSHOT
'export'`` exported, so the rows are exactly the state at the slot's
consistent point: streaming from that point afterwards loses nothing and
repeats nothing. Rows are read in chunks through a server-side cursor so a
large table never sits in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import psycopg
from psycopg import sql
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.types.string import TextLoader

from streams.envelope import ColumnSpec

logger = logging.getLogger(__name__)

COLUMNS_SQL = """
select a.attname, a.atttypid::int, a.atttypmod,
       coalesce(a.attnum = any(i.indkey), false) as is_key
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
left join pg_index i on i.indrelid = c.oid
     and (i.indisprimary or (c.relreplident = 'i' and i.indisreplident))
where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""


class Unrepresentable:
    """A value PostgreSQL holds and Python cannot (a date or timestamp of infinity, before year 1 or after 9999), read
    as its text, so that the snapshot can set its row aside instead of failing on the whole table."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def _tolerant(base: type, seen: list[int]) -> type:
    """A loader that reads what ``base`` reads, and an :class:`Unrepresentable` where ``base`` fails (counted in
    ``seen[0]``). psycopg's C loaders cannot be subclassed, hence the delegation."""

    class Tolerant(Loader):
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._load = base(oid, context).load

        def load(self, data: Any) -> Any:
            try:
                return self._load(data)
            except psycopg.DataError:
                seen[0] += 1
                return Unrepresentable(bytes(data).decode("utf-8", "replace"))

    return Tolerant


@dataclass(frozen=True)
class TableRef:
    schema: str
    table: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def table_columns(conn: psycopg.Connection, ref: TableRef) -> list[ColumnSpec]:
    rows = conn.execute(COLUMNS_SQL, (ref.schema, ref.table)).fetchall()
    if not rows:
        raise LookupError(f"table {ref.qualified} does not exist")
    # With several unique indexes the join repeats columns; keep one row per column.
    seen: dict[str, ColumnSpec] = {}
    for name, oid, typmod, is_key in rows:
        prev = seen.get(name)
        seen[name] = ColumnSpec(name, oid, typmod, is_key or (prev.key if prev else False))
    return list(seen.values())


def count_rows(conn: psycopg.Connection, ref: TableRef) -> int:
    query = sql.SQL("select count(*) from {}.{}").format(sql.Identifier(ref.schema), sql.Identifier(ref.table))
    return conn.execute(query).fetchone()[0]


class Snapshotter:
    """Reads tables inside an exported snapshot, chunk by chunk."""

    def __init__(self, dsn: str, snapshot_name: str, chunk_rows: int = 5000) -> None:
        self.conn = psycopg.connect(dsn)
        # Change events carry json/jsonb as their text, exactly as streaming does.
        for name in ("json", "jsonb"):
            self.conn.adapters.register_loader(name, TextLoader)
        #: values read as Unrepresentable since the last batch; ``odd`` is true while a batch that had one is yielded
        self._seen = [0]
        self.odd = False
        for name in ("date", "timestamp", "timestamptz"):
            oid = self.conn.adapters.types[name].oid
            self.conn.adapters.register_loader(oid, _tolerant(self.conn.adapters.get_loader(oid, Format.TEXT), self._seen))
        self.conn.execute("begin isolation level repeatable read read only")
        self.conn.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot_name)))
        self.chunk_rows = chunk_rows

    def columns(self, ref: TableRef) -> list[ColumnSpec]:
        return table_columns(self.conn, ref)

    def rows(self, ref: TableRef, columns: list[ColumnSpec], progress: Callable[[int, int], None] | None = None) -> Iterator[dict[str, Any]]:
        total = count_rows(self.conn, ref)
        names = [c.name for c in columns]
        query = sql.SQL("select {} from {}.{}").format(
            sql.SQL(", ").join(sql.Identifier(n) for n in names), sql.Identifier(ref.schema), sql.Identifier(ref.table)
        )
        done = 0
        with self.conn.cursor(name=f"psmesh_snapshot_{ref.table}") as cur:
            cur.itersize = self.chunk_rows
            cur.execute(query)
            while batch := cur.fetchmany(self.chunk_rows):
                self.odd, self._seen[0] = self._seen[0] > 0, 0
                for row in batch:
                    yield dict(zip(names, row))
                done += len(batch)
                if progress:
                    progress(done, total)
        if progress and done == 0:
            progress(0, 0)

    def close(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()
