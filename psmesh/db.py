"""SQLAlchemy engines over psycopg 3 for libpq connection strings (``Settings.pg_dsn``)."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Engine, create_engine


def make_engine(dsn: str, application_name: str, pool_size: int = 2, max_overflow: int = 0) -> Engine:
    """A small pool for one database.

    ``pool_pre_ping`` finds connections that died while the server was down
    (they are replaced instead of failing the next use a second time).
    """
    return create_engine(
        "postgresql+psycopg://",
        connect_args={"connect_timeout": 5, "application_name": application_name, **conninfo_to_dict(dsn)},
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
    )
