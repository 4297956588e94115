"""kill -9 of the capture mid-load, then a restart: every row's final state is in the topic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from streams import position
from tests.integration.capture_support import ScratchSource, read_final_states, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROWS = 200_000
BATCH = 2_000


def _start(config_file: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.capture_process", str(config_file)],
        cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def test_kill_9_mid_load_then_restart_loses_no_row(stack_settings, tmp_path):
    source = ScratchSource.create(stack_settings, tmp_path / "cdc")
    config = asdict(source.config(snapshot=False, heartbeat_interval=1.0))
    config["state_dir"] = str(config["state_dir"])
    config_file = tmp_path / "capture.json"
    config_file.write_text(json.dumps(config))
    log = tmp_path / "capture.log"
    status = tmp_path / "cdc" / f"{source.name}.status.json"
    proc = _start(config_file, log)
    try:
        assert wait_for(status.exists, timeout=60), log.read_text()[-3000:]

        def load() -> None:
            with psycopg.connect(source.dsn, autocommit=True) as conn:
                for first in range(1, ROWS + 1, BATCH):
                    conn.execute(
                        """insert into time_entries
                           select g, g %% 50, 'PRJ-' || (g %% 97), 'consultant', date '2026-01-05' + (g %% 60)::int,
                                  8.00, g %% 5 <> 0, 150.00, 90.00, 'submitted', 'work', now(), null, now()
                           from generate_series(%s::bigint, %s::bigint) g""",
                        (first, first + BATCH - 1),
                    )
                    time.sleep(0.03)  # a steady load over several seconds, so the kill lands inside it
                # Later changes to a slice of rows: the final state differs from the insert.
                conn.execute("update time_entries set status = 'approved', hours = 7.25 where entry_id % 10 = 0")
                conn.execute("delete from time_entries where entry_id % 1000 = 1")

        loader = threading.Thread(target=load)
        loader.start()
        # Kill once the capture is well into the load.
        topic = source.topic("time_entries")
        with psycopg.connect(source.dsn) as conn:
            slot_at_start = conn.execute(
                "select confirmed_flush_lsn from pg_replication_slots where slot_name = %s", (f"slot_{source.name}",)
            ).fetchone()[0]

        def publishing() -> bool:
            with psycopg.connect(source.dsn) as conn:
                return conn.execute(
                    "select confirmed_flush_lsn > %s::pg_lsn from pg_replication_slots where slot_name = %s",
                    (str(slot_at_start), f"slot_{source.name}"),
                ).fetchone()[0]

        # Kill once Kafka has acknowledged part of the load and more is in flight.
        assert wait_for(publishing, timeout=60, interval=0.1)
        time.sleep(1.0)
        assert loader.is_alive(), "the kill must land in the middle of the load"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        time.sleep(1)
        proc = _start(config_file, log)
        loader.join(300)
        assert not loader.is_alive()

        # Heartbeats move the WAL too; caught up = confirmed reaches the position of the load's end.
        with psycopg.connect(source.dsn) as conn:
            end_of_load = conn.execute("select pg_current_wal_lsn()").fetchone()[0]

        def past_load() -> bool:
            with psycopg.connect(source.dsn) as conn:
                return conn.execute(
                    "select confirmed_flush_lsn >= %s::pg_lsn from pg_replication_slots where slot_name = %s",
                    (str(end_of_load), f"slot_{source.name}"),
                ).fetchone()[0]

        assert wait_for(past_load, timeout=300, interval=1.0), log.read_text()[-3000:]
        assert proc.poll() is None, log.read_text()[-3000:]

        state, count = read_final_states(stack_settings, topic)
        # The repeats the restart published are told apart by their position header (streams/position.py): left
        # out as the processors' router leaves them out, the rest folds to the same final states, and no row's
        # versions go back.
        marks: dict[int, list[int]] = {}
        newest: dict[bytes, tuple[int, int]] = {}
        left_out, backwards, unpositioned, origins = [], [], [], set()

        def unrepeated(msg) -> bool:
            at = position.of(msg.headers())
            if at is None:
                unpositioned.append(msg.offset())
                return True
            origins.add(at[0])
            mark = position.advance(marks.get(msg.partition()), at)
            if mark is None:
                left_out.append(at)
                return False
            marks[msg.partition()] = mark
            if (at[1], at[2]) < newest.get(msg.key(), (0, 0)):
                backwards.append((msg.key(), at))
            newest[msg.key()] = (at[1], at[2])
            return True

        unrepeated_state, _ = read_final_states(stack_settings, topic, unrepeated)
        assert unpositioned == [], "every streamed event carries its position"
        with psycopg.connect(source.dsn) as conn:
            system = conn.execute("select system_identifier from pg_control_system()").fetchone()[0]
            timeline = conn.execute("select timeline_id from pg_control_checkpoint()").fetchone()[0]
        assert origins == {f"{system}.{timeline}.0"}, "positions name the cluster and timeline they were read from"
        assert backwards == [], f"{len(backwards)} versions taken after a newer one of their row, e.g. {backwards[:3]}"
        assert unrepeated_state == state
        published_once = ROWS + ROWS // 10 + 2 * (ROWS // 1000)  # inserts, updates, deletes and their tombstones
        assert count - len(left_out) >= published_once
        # of the events the restart sent again, all but those at a partition's last position taken are left out
        assert count - len(left_out) - published_once <= 2 * len(marks)
        print(f"repeats left out by position: {len(left_out)}")
        with psycopg.connect(source.dsn) as conn:
            rows = conn.execute("select entry_id, status, hours from time_entries").fetchall()
        expected = {((("entry_id", r[0]),)): (r[1], r[2]) for r in rows}
        actual = {k: (v["status"], v["hours"]) for k, v in state.items()}
        assert len(expected) == ROWS - ROWS // 1000
        missing = expected.keys() - actual.keys()
        assert not missing, f"{len(missing)} rows lost, e.g. {sorted(missing)[:5]}"
        assert actual.keys() - expected.keys() == set(), "deleted rows must be gone (tombstones)"
        wrong = [k for k in expected if expected[k] != actual[k]]
        assert not wrong, f"{len(wrong)} rows with a stale final state, e.g. {wrong[:3]}"
        assert actual[(("entry_id", 10),)] == ("approved", Decimal("7.25"))
        print(f"records read {count} for {len(expected)} live rows (duplicates from replay: {count - (ROWS + ROWS // 10 + 2 * (ROWS // 1000))})")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        source.drop()
