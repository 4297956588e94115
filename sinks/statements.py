"""The idempotent statements every sink is made of, built from table metadata.

:func:`apply_writes` folds a batch of :class:`~sinks.base.Write` into one
statement per table and action, executed as executemany:

* per key only the outcome matters, so a batch keeps the last write of a key
  (upsert or delete), or the first for ``INSERT_ONCE`` — this also keeps
  PostgreSQL from refusing an upsert that would touch a row twice
  (SQLSTATE 21000); an upsert that leaves columns out (a change event's
  unchanged TOASTed columns) takes them from the key's earlier upsert in the
  batch, as writing the two one after the other would;
* a ``TRUNCATE`` forgets the writes of that table before it in the batch and
  runs first;
* keys are independent, so deletes and upserts of different keys commute.

Replaying a batch gives the same rows: upserts set the same values, inserts
of existing keys do nothing, deletes of absent keys delete nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Table, delete, func, or_, tuple_
from sqlalchemy.dialects.postgresql import insert

from sinks.base import Action, Write


@dataclass(frozen=True)
class TableSpec:
    """A target table and the columns the database stamps with ``now()``."""

    table: Table
    #: Written when the row is inserted, never updated (e.g. a status people change later).
    insert_only: tuple[str, ...] = ()
    #: Set to now() when the row is inserted (e.g. created_at), never on update.
    now_on_insert: tuple[str, ...] = ()
    #: Set to now() when the row is inserted or actually changed (e.g. updated_at).
    now_on_change: tuple[str, ...] = ()
    key_columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_columns", tuple(c.name for c in self.table.primary_key.columns))


def fold(writes: Sequence[Write]) -> dict[str, tuple[bool, dict[tuple[Any, ...], Write]]]:
    """Per table: (truncate first?, the outcome write per key), as described in the module docstring."""
    tables: dict[str, tuple[bool, dict[tuple[Any, ...], Write]]] = {}
    for w in writes:
        truncate, by_key = tables.setdefault(w.table, (False, {}))
        if w.action is Action.TRUNCATE:
            tables[w.table] = (True, {})
        elif w.action is Action.INSERT_ONCE:
            by_key.setdefault(w.key, w)
        else:
            earlier = by_key.pop(w.key, None)  # re-insert so the dict keeps the latest write's order
            if (w.row is not None and earlier is not None and earlier.row is not None
                    and earlier.action is not Action.INSERT_ONCE and not earlier.row.keys() <= w.row.keys()):
                # A row without some columns leaves them as they are (a change event's unchanged TOASTed
                # columns): as they are after the earlier write of the batch, as writing one by one would.
                w = replace(w, row={**earlier.row, **w.row})
            by_key[w.key] = w
    return tables


def apply_writes(conn: Connection, specs: Mapping[str, TableSpec], writes: Sequence[Write]) -> Counter[str]:
    """Execute ``writes`` on ``conn`` (the caller's transaction); rows affected per table."""
    counts: Counter[str] = Counter()
    for name, (truncate, by_key) in fold(writes).items():
        spec = specs[name]
        if truncate:
            counts[name] += conn.execute(delete(spec.table)).rowcount
        deletes = [w.key for w in by_key.values() if w.action is Action.DELETE]
        if deletes:
            counts[name] += _delete(conn, spec, deletes)
        groups: dict[tuple[Action, tuple[str, ...]], list[dict[str, Any]]] = {}
        for w in by_key.values():
            if w.action is not Action.DELETE:
                assert w.row is not None, f"{w.action.value} of {name} without a row"
                groups.setdefault((w.action, tuple(w.row)), []).append(w.row)
        for (action, columns), rows in groups.items():
            # RETURNING counts the rows actually inserted or updated (an insert-once
            # of an existing key returns nothing); executemany's rowcount does not.
            counts[name] += len(conn.execute(_insert(spec, action, columns), rows).all())
    return counts


def _delete(conn: Connection, spec: TableSpec, keys: list[tuple[Any, ...]]) -> int:
    table = spec.table
    stmt = delete(table).where(tuple_(*(table.c[k] for k in spec.key_columns)).in_(keys))
    return max(conn.execute(stmt).rowcount, 0)


def _insert(spec: TableSpec, action: Action, columns: tuple[str, ...]):
    table = spec.table
    stamped = {c: func.now() for c in (*spec.now_on_insert, *spec.now_on_change) if c not in columns}
    stmt = insert(table).values(stamped) if stamped else insert(table)
    returning = [table.c[spec.key_columns[0]]]
    if action is Action.INSERT_ONCE:
        return stmt.on_conflict_do_nothing(index_elements=list(spec.key_columns)).returning(*returning)
    changing = [c for c in columns if c not in spec.key_columns and c not in spec.insert_only]
    assignments: dict[str, Any] = {c: stmt.excluded[c] for c in changing}
    assignments.update({c: func.now() for c in spec.now_on_change if c not in columns})
    if not assignments:
        return stmt.on_conflict_do_nothing(index_elements=list(spec.key_columns)).returning(*returning)
    where = None
    if action is Action.UPSERT_IF_CHANGED and changing:
        where = or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in changing))
    return stmt.on_conflict_do_update(index_elements=list(spec.key_columns), set_=assignments, where=where).returning(*returning)
