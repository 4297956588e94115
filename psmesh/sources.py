"""The four source databases of DOMAIN.md section 1, as SQL kept in schemas/sources/.

The demo firm and the tests create them with :func:`create_source_tables`;
at a real firm they already exist and psmesh only reads them.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from psmesh.config import SOURCE_DATABASES, Settings

SQL_DIR = Path(__file__).resolve().parent.parent / "schemas" / "sources"


def source_sql(source: str) -> str:
    if source not in SOURCE_DATABASES:
        raise ValueError(f"unknown source database {source!r}; expected one of {', '.join(SOURCE_DATABASES)}")
    return (SQL_DIR / f"{source}.sql").read_text()


def create_source_tables(settings: Settings, sources: tuple[str, ...] = SOURCE_DATABASES) -> None:
    """Create the DOMAIN.md tables in each source database; harmless when they exist."""
    for source in sources:
        with psycopg.connect(settings.pg_dsn(source), autocommit=True) as conn:
            conn.execute(source_sql(source))
