"""Benchmark: one 1,000,000-row transaction through the capture, with its peak memory.

PostgreSQL streams a transaction larger than ``logical_decoding_work_mem``
(protocol 2, ``streaming 'on'``) before it commits; the capture spills it to
disk and publishes it at Stream Commit. This prints the capture process's
peak RSS (VmHWM) before and after the transaction, the spill size, the time
from commit to the last acknowledgement, and the number of records in the
topic (it must be ROWS).

    .venv/bin/python bench/cdc_large_transaction.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time

from rig import INSERT_TIME_ENTRIES, CaptureRig, peak_rss_kib

import psycopg  # noqa: E402  (rig puts the project on sys.path)
from confluent_kafka import Consumer, TopicPartition  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rig = CaptureRig(partitions=1, topic_config={"cleanup.policy": "compact"})
    try:
        proc = rig.start()
        idle_peak = peak_rss_kib(proc.pid)
        with psycopg.connect(rig.dsn) as conn:
            work_mem = conn.execute("show logical_decoding_work_mem").fetchone()[0]
            conn.execute(INSERT_TIME_ENTRIES, (1, args.rows))
            conn.commit()
        committed = time.perf_counter()
        spill_peak = 0

        def watch_spill() -> None:
            nonlocal spill_peak
            spill_dir = rig.state_dir / "spill"
            spilled = sum(f.stat().st_size for f in spill_dir.rglob("*.spill")) if spill_dir.exists() else 0
            spill_peak = max(spill_peak, spilled)

        rig.wait_confirmed(rig.current_lsn(), on_poll=watch_spill)
        elapsed = time.perf_counter() - committed
        peak = peak_rss_kib(proc.pid)
        rig.stop()
        consumer = Consumer({**rig.settings.kafka_client_config(), "group.id": f"bench-{rig.name}"})
        low, high = consumer.get_watermark_offsets(TopicPartition(rig.topic, 0), timeout=10)
        consumer.close()
        print(f"logical_decoding_work_mem = {work_mem}")
        print(f"{args.rows:,} rows in one transaction: {high - low:,} records in {rig.topic}; "
              f"commit → all acknowledged in {elapsed:.1f} s ({args.rows / elapsed:,.0f} rows/s)")
        print(f"capture peak RSS: {idle_peak / 1024:.0f} MiB before the transaction, {peak / 1024:.0f} MiB after "
              f"(spill file peak seen: {spill_peak / 2**20:.0f} MiB on disk)")
    finally:
        rig.close()


if __name__ == "__main__":
    main()
