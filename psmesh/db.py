"""SQLAlchemy engines over psycopg 3 for libpq connection strings (``Settings.pg_dsn``)."""

from __future__ import annotations

from typing import Any

from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Engine, create_engine


#: TCP keepalives and a send timeout: a server that vanished (host down, a firewall dropping the connection) is
#: noticed in about a minute rather than after the kernel's two hours, and the call waiting on it fails as a lost
#: connection, which the callers retry.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
              "tcp_user_timeout": 60_000}


def make_engine(dsn: str, application_name: str, pool_size: int = 2, max_overflow: int = 0, *,
                lock_timeout: str | None = None, statement_timeout: str | None = None) -> Engine:
    """A small pool for one database.

    ``pool_pre_ping`` finds connections that died while the server was down
    (they are replaced instead of failing the next use a second time).
    ``lock_timeout``, ``statement_timeout`` (PostgreSQL's units: ``10s``): a write waiting on another session's lock,
    or a statement running that long, fails with SQLSTATE 55P03 or 57014 instead of waiting without end.
    Statement parameters are left out of error messages (``hide_parameters``): they are rows of the firm's data.
    """
    return create_engine(
        "postgresql+psycopg://",
        connect_args=connect_args(dsn, application_name, lock_timeout=lock_timeout,
                                  statement_timeout=statement_timeout),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        hide_parameters=True,
    )


def connect_args(dsn: str, application_name: str, *, lock_timeout: str | None = None,
                 statement_timeout: str | None = None) -> dict[str, Any]:
    """psycopg's connection arguments: the DSN's (which win), the defaults above, the timeouts as server options
    after any the DSN gives."""
    args: dict[str, Any] = {"connect_timeout": 5, "application_name": application_name, **KEEPALIVES,
                            **conninfo_to_dict(dsn)}
    options = [f"-c {name}={value}" for name, value in (("lock_timeout", lock_timeout),
                                                        ("statement_timeout", statement_timeout)) if value]
    if options:
        args["options"] = " ".join(filter(None, [args.get("options"), *options]))
    return args
