"""The benches' shared rig: a scratch source database, its topic, and a capture process."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The benches' own stack: a runtime directory and ports no developer or test stack uses
#: (below Linux's ephemeral range). Any PSMESH_* variable already set wins.
BENCH_STACK = {
    "PSMESH_HOME": str(Path(tempfile.gettempdir()) / "psmesh-bench"),
    "PSMESH_KAFKA_PORT": "26092",
    "PSMESH_KAFKA_CONTROLLER_PORT": "26093",
    "PSMESH_PG_PORT": "26433",
    "PSMESH_REGISTRY_PORT": "26081",
}
for _name, _value in BENCH_STACK.items():
    os.environ.setdefault(_name, _value)

import psycopg  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from psmesh.config import load_settings  # noqa: E402
from psmesh.sources import source_sql  # noqa: E402
from psmesh.stack import LocalStack  # noqa: E402
from streams.source import CaptureConfig, CaptureSource  # noqa: E402

#: ``time_entries`` rows shaped like the demo firm's; parameters: first and last entry_id.
INSERT_TIME_ENTRIES = """insert into time_entries
  select g, g %% 50, 'PRJ-' || (g %% 97), 'consultant', date '2026-01-05' + (g %% 60)::int,
         7.50, g %% 5 <> 0, 150.00, 90.00, 'submitted', 'design workshop', now(), null, now()
  from generate_series(%s::bigint, %s::bigint) g"""


def _capture(config: CaptureConfig) -> None:
    capture = CaptureSource(config)
    capture.install_signal_handlers()
    capture.run()


class CaptureRig:
    """A scratch ``timeexp``-shaped database with one captured table and its topic.

    Uses the local stack of ``BENCH_STACK`` (started if needed, left running), or
    the servers the ``PSMESH_*`` variables point at; ``close()`` drops what it made.
    """

    def __init__(self, partitions: int, topic_config: dict[str, str]) -> None:
        self.settings = load_settings()
        if not self.settings.kafka_bootstrap:
            LocalStack(self.settings).up()
        self.name = f"bench{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.settings.pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'create database "{self.name}"')
        self.dsn = self.settings.pg_dsn(self.name)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(source_sql("timeexp"))
        self.topic = f"{self.name}.public.time_entries"
        self.admin = AdminClient(self.settings.kafka_client_config())
        self.admin.create_topics([NewTopic(self.topic, partitions, 1, config=topic_config)])[self.topic].result()
        self.state_dir = Path(tempfile.mkdtemp(prefix="psmesh-bench-"))
        self.config = CaptureConfig(
            name=self.name, dsn=self.dsn, database=self.name, tables=("public.time_entries",),
            slot=f"slot_{self.name}", publication=f"pub_{self.name}",
            registry_url=self.settings.schema_registry_url, kafka=self.settings.kafka_client_config(),
            state_dir=self.state_dir, snapshot=False, heartbeat_interval=0, status_interval=0.2, create_topics=False,
        )
        self.process: mp.Process | None = None

    def start(self) -> mp.Process:
        """Start the capture in its own process; return once it streams."""
        status = self.state_dir / f"{self.name}.status.json"
        status.unlink(missing_ok=True)
        self.process = mp.get_context("spawn").Process(target=_capture, args=(self.config,))
        self.process.start()
        while not status.exists():
            self._check_alive()
            time.sleep(0.1)
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(60)
            self.process = None

    def _check_alive(self) -> None:
        if self.process is not None and not self.process.is_alive():
            raise SystemExit(f"the capture process died (exit code {self.process.exitcode}); see its traceback above")

    def current_lsn(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()[0]

    def confirmed_lsn(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "select pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint from pg_replication_slots where slot_name = %s",
                (self.config.slot,),
            ).fetchone()
        return row[0] if row and row[0] is not None else 0

    def wait_confirmed(self, lsn: int, on_poll=None) -> None:
        """Until PostgreSQL reports ``lsn`` confirmed, i.e. Kafka acknowledged every event before it."""
        while self.confirmed_lsn() < lsn:
            self._check_alive()
            if on_poll is not None:
                on_poll()
            time.sleep(0.05)

    def close(self) -> None:
        self.stop()
        with psycopg.connect(self.settings.pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = %s", (self.config.slot,))
            conn.execute(f'drop database "{self.name}" with (force)')
        self.admin.delete_topics([self.topic])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
