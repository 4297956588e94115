"""Applies a simulated day's row changes to the source databases, and reads back erp.

One transaction per source database per day, in the order the changes were
made; runs of the same kind of change to one table go in one executemany.
Table definitions are reflected from the databases, whose DDL is
schemas/sources/*.sql: the writer never declares a schema of its own.
"""

from __future__ import annotations

import logging
from collections import Counter
from itertools import groupby
from typing import Iterable, Mapping

import psycopg
import sqlalchemy as sa

from psmesh.config import SOURCE_DATABASES, Settings
from psmesh.firm.exceptions import SourcesNotEmpty
from psmesh.firm.model import OWNED_TABLES, PRIMARY_KEYS, ErpView, RowChange
from psmesh.sources import source_sql

logger = logging.getLogger(__name__)


class SourceWriter:
    """Writes the firm's changes into crm, psa, timeexp and erp (or databases mapped in their place)."""

    def __init__(self, settings: Settings, databases: Mapping[str, str] | None = None) -> None:
        self.databases = {s: (databases or {}).get(s, s) for s in SOURCE_DATABASES}
        self.engines = {
            source: sa.create_engine("postgresql+psycopg://", creator=lambda dsn=settings.pg_dsn(db): psycopg.connect(dsn))
            for source, db in self.databases.items()
        }
        self.tables: dict[tuple[str, str], sa.Table] = {}

    def prepare(self, fresh: bool = False) -> None:
        """Create the source tables if missing; truncate the firm's own when ``fresh``.

        Without ``fresh``, the firm's tables must be empty: ids start at 1.
        """
        for source, engine in self.engines.items():
            with engine.begin() as conn:
                conn.exec_driver_sql(source_sql(source))
            meta = sa.MetaData()
            meta.reflect(engine, only=[t for s, t in PRIMARY_KEYS if s == source])
            for (s, t) in PRIMARY_KEYS:
                if s == source:
                    self.tables[(s, t)] = meta.tables[t]
        for source, engine in self.engines.items():
            owned = [self.tables[k] for k in OWNED_TABLES if k[0] == source]
            with engine.begin() as conn:
                if fresh:
                    conn.exec_driver_sql("TRUNCATE " + ", ".join(t.name for t in owned))
                    logger.info("truncated the firm's tables in %s", self.databases[source])
                    continue
                for t in owned:
                    if conn.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first():
                        raise SourcesNotEmpty(f"{self.databases[source]}.{t.name} already has rows; start fresh to replace them")

    def read_erp(self) -> ErpView:
        """What the mesh has written into erp so far (projects, milestones, billing events)."""
        with self.engines["erp"].connect() as conn:
            projects = frozenset(conn.exec_driver_sql("SELECT project_code FROM projects").scalars())
            milestones = {
                mid: (code, status, planned)
                for mid, code, status, planned in conn.exec_driver_sql(
                    "SELECT milestone_id, project_code, status, planned_date FROM billing_milestones ORDER BY milestone_id"
                )
            }
            events = {
                eid: (code, amount, currency, created)
                for eid, code, amount, currency, created in conn.exec_driver_sql(
                    "SELECT billing_event_id, project_code, amount, currency, created_at FROM billing_events ORDER BY billing_event_id"
                )
            }
        return ErpView(projects=projects, milestones=milestones, billing_events=events)

    def apply(self, changes: Iterable[RowChange]) -> Counter[str]:
        """Write one day's changes: one transaction per source database, in order."""
        written: Counter[str] = Counter()
        by_source: dict[str, list[RowChange]] = {}
        for change in changes:
            by_source.setdefault(change.source, []).append(change)
        for source in SOURCE_DATABASES:
            batch = by_source.get(source)
            if not batch:
                continue
            with self.engines[source].begin() as conn:
                for (table, op, cols), run in groupby(batch, key=lambda c: (c.table, c.op, tuple(k for k, _ in c.values))):
                    run = list(run)
                    t = self.tables[(source, table)]
                    if op == "insert":
                        conn.execute(t.insert(), [c.as_dict() for c in run])
                    else:
                        pk = PRIMARY_KEYS[(source, table)]
                        stmt = t.update().where(t.c[pk] == sa.bindparam("_pk"))
                        conn.execute(stmt, [{"_pk": c.key, **c.as_dict()} for c in run])
                    written[f"{source}.{table}"] += len(run)
        return written

    def dispose(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
