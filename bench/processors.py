"""Benchmark: change events per second through the view processors, and recovery time of a restarted worker.

On a stack of its own (Kafka, PostgreSQL, registry started under a temporary
runtime dir on ports 24xxx, removed at the end), the topology is applied and
a backlog of capture-shaped change events (Avro, Confluent wire format) is
produced to the change topics: accounts, won opportunities with lines,
resources, then time entries inserted as 'submitted' and updated to
'approved', and expenses (bench/backlog.py). One worker (``psmesh processors run``, RocksDB
tables, as in normal runs) then works through the backlog; the figure is
change events / (time from the worker being ready, its tables recovered,
until the last stage settled its last batch, both by the worker's clock).
Every change event is routed, then folded by the project stage,
and time entries by the resource stage too.

The default backlog, 90,000 time entries (196,390 change events, about 17 s
of one worker's work on the machine of docs/processors-performance.md), is
long enough for the figure to be the worker's sustained rate. With 30,000
(6–7 s), about a second of the window does not grow with the backlog (the
first batches' one-time work, the stages' pipeline filling and draining),
and the figure reads 10–15 % lower ("Nineteenth round" there).

Then recovery: the worker is stopped (SIGTERM) and started again, (a) on its
own RocksDB data (a restart) and (b) on an empty data dir (a new machine,
every table rebuilt from its changelog); the time from process start until
its HTTP port answers with every stage rebuilt is printed.

With ``--ceiling``, the same backlog is first read by a Faust agent that
does nothing else (bench/faust_ceiling.py): with faust-streaming as
installed, with processors/faust_fixes.py, with every event decoded too,
with the events taken in lists as the worker's stages take them
(``take_batches``), and handed over as the fetch gives them, as the worker's
router takes them (``Feed``). That is what one worker can reach on this
machine before any stage runs.

With ``--workers N``, the backlog is then read again by N workers sharing
a new consumer group (scale-out), and the views they serve together are
compared with the single worker's. For this the broker is restarted with
Kafka's default ``group.initial.rebalance.delay.ms`` (3 s; the stack's is 0),
so that the N workers, started together, join the group in one assignment.

With ``--inserts-only``, each time entry is one change event, inserted as
'approved': the router then finds no earlier version of a row in its batch
to leave out (processors/app.py ``_coalesced``), the case of a live stream.

With ``--runs N``, N workers one after the other each read the whole backlog
in a group of their own (the run-to-run spread, and its median); with
``--no-recovery``, the recovery measurements are left out.

The stack's directory (its data, the stack's and the workers' logs) is
removed after a run that finished, and kept after one that failed, so
that the log a failure names can be read; ``PSMESH_BENCH_KEEP=1`` keeps it
always.

    .venv/bin/python bench/processors.py [--entries 90000] [--runs 3] [--no-recovery] [--inserts-only] [--ceiling]
                                         [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from backlog import SCHEMAS, TABLES, Positions, envelope, produce, value_columns  # noqa: E402  (bench/backlog.py)
from psmesh.config import Settings, settings_env  # noqa: E402
from psmesh.stack import LocalStack  # noqa: E402
from psmesh.stack.kafka import KafkaServer  # noqa: E402
from psmesh.topology.apply import apply_topology  # noqa: E402
from psmesh.topology.model import load_topology  # noqa: E402

#: below Linux's ephemeral range (32768-60999): a client probing a port there before its server listens can be
#: handed that same port as its own and connect to itself, and the server then cannot bind it
PORTS = {"kafka_port": 24192, "kafka_controller_port": 24193, "pg_port": 24533, "registry_port": 24181,
         "processors_port": 24166}


class Backlog:
    """Produces capture-shaped envelopes; counts them."""

    def __init__(self, settings: Settings) -> None:
        # idempotent, as the capture's producer is: a retried request cannot land behind a later one, so each
        # partition holds the changes in the order they were sent, as the positions say (streams/position.py)
        self.producer = Producer({**settings.kafka_client_config(), "linger.ms": 20, "compression.type": "lz4",
                                  "enable.idempotence": True})
        self.registry = SchemaRegistryClient({"url": settings.schema_registry_url})
        self.serializers: dict[str, tuple[AvroSerializer, list[str]]] = {}
        self.count = 0
        self.positions = Positions()

    def _ser(self, stem: str) -> tuple[AvroSerializer, list[str]]:
        if stem not in self.serializers:
            text = (SCHEMAS / f"{stem}.avsc").read_text()
            columns = value_columns(text) if stem.endswith("-value") else []
            self.serializers[stem] = (AvroSerializer(self.registry, text), columns)
        return self.serializers[stem]

    def send(self, table: str, op: str, **row) -> None:
        topic, stem, pk = TABLES[table]
        key_ser, _ = self._ser(f"{stem}-key")
        value_ser, columns = self._ser(f"{stem}-value")
        self.producer.produce(topic, key=key_ser({pk: row[pk]}, SerializationContext(topic, MessageField.KEY)),
                              value=value_ser(envelope(table, op, columns, row),
                                              SerializationContext(topic, MessageField.VALUE)),
                              headers=self.positions.next())
        self.count += 1
        if self.count % 5000 == 0:
            self.producer.poll(0)

    def flush(self) -> None:
        """Every change on the broker; then the producer is let go (left open, librdkafka logs connection
        errors once the stack stops)."""
        assert self.producer.flush(60) == 0
        self.producer = None


def metrics_text(port: int, query: str = "") -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics{query}", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def metrics(port: int) -> dict[str, float]:
    """Events per stage, and as ``held`` the view rows the stages hold back (published once their input pauses:
    the worker's work is not done before); only those are asked for, as the drain asks five times a second (the
    whole page made 1.8 % of the samples of a py-spy profile of the worker at that rate)."""
    text = metrics_text(port, "?name[]=psmesh_processor_events_total&name[]=psmesh_processor_held_view_rows")
    found = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'psmesh_processor_events_total\{stage="(\w+)"\} ([\d.e+]+)', text)}
    found["held"] = sum(float(m.group(1)) for m in re.finditer(
        r'psmesh_processor_held_view_rows\{stage="\w+"\} ([\d.e+]+)', text))
    return found


def output_summary(port: int, events: int) -> str:
    """Records published per topic and rows per batch per stage, from the worker's metrics."""
    text = metrics_text(port)
    published = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'psmesh_processor_published_total\{topic="([\w.]+)"\} ([\d.e+]+)', text)}
    batches = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'psmesh_processor_event_seconds_count\{stage="(\w+)"\} ([\d.e+]+)', text)}
    rows = metrics(port)
    total = sum(published.values())
    lines = [f"published: {total:,.0f} view and derived records ({total / events:.2f} per change event): "
             + ", ".join(f"{t} {n:,.0f}" for t, n in sorted(published.items(), key=lambda kv: -kv[1]))]
    coalesced = re.search(r"^psmesh_processor_coalesced_total ([\d.e+]+)", text, re.M)
    if coalesced:
        lines.append(f"coalesced: {float(coalesced.group(1)):,.0f} change events not forwarded, a later version of "
                     f"their row in the same router batch superseding them")
    repeated = sum(float(m.group(1)) for m in re.finditer(
        r'^psmesh_processor_repeated_total\{topic="[\w.]+"\} ([\d.e+]+)', text, re.M))
    if repeated:  # the backlog repeats nothing: a change left out here is a change lost, and the figures are void
        raise SystemExit(f"the worker left out {repeated:,.0f} change events of a backlog that repeats none")
    lines.append("rows per batch: " + ", ".join(f"{s} {rows.get(s, 0) / n:,.0f}" for s, n in sorted(batches.items())
                                                if n))
    return "\n".join(lines)


VIEWS = ("project_financials", "project_risks", "resource_week", "pipeline", "bookings", "skill_week")


def view_rows(*ports: int, drop: tuple[str, ...] = ()) -> dict[str, list]:
    """Every view's rows as the workers on ``ports`` serve them (each its partitions), sorted; ``drop``: columns
    left out (raised_at is the wall-clock time a run raised an alert)."""
    out: dict[str, list] = {view: [] for view in VIEWS}
    for port in ports:
        for view in VIEWS:
            rows = _view(f"http://127.0.0.1:{port}/views/{view}/")
            out[view] += [json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True) for r in rows]
    return {view: sorted(rows) for view, rows in out.items()}


def _view(url: str, timeout: float = 120) -> list:
    """A view's rows; a worker still rebalancing answers 503 until its views are rebuilt, so ask again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())["rows"]
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def start_worker(settings: Settings, datadir: Path, log: Path, port: int | None = None,
                 app_id: str = "psmesh-bench") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "psmesh", "processors", "run", "--web-port", str(port or settings.processors_port),
         "--datadir", str(datadir), "--app-id", app_id],
        env={**os.environ, **settings_env(settings)}, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_rebuilt(worker: subprocess.Popen, log: Path, began_lines: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_text(errors="replace").splitlines()[began_lines:]
        if sum("rebuilt from" in line for line in lines) >= 3:
            return
        if worker.poll() is not None:
            raise SystemExit(f"the restarted worker exited (code {worker.returncode}); see {log}")
        time.sleep(0.05)
    raise SystemExit(f"the worker did not rebuild its stages in {timeout}s; see {log}")


def stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


def cpu_seconds(workers: list[subprocess.Popen]) -> float:
    """The CPU time (user and system, all threads) the worker processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for worker in workers:
        fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


#: Faust's line once a worker has recovered its tables and rebuilt its stages; it reads its input from then on
_READY = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] .*\[\^Worker\]: Ready")


def ready_at(log: Path) -> float | None:
    """When the worker logging to ``log`` said it was ready (Unix time, from the log line's own timestamp)."""
    for line in log.read_text(errors="replace").splitlines():
        found = _READY.match(line)
        if found:  # Faust's log timestamps are local time, as a naive datetime's timestamp() takes them
            return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def settled_at(port: int) -> float:
    """When the worker on ``port`` last settled a batch of any stage (Unix time, by its own clock)."""
    return max((float(m.group(1)) for m in re.finditer(
        r'psmesh_processor_last_settled_timestamp_seconds\{stage="\w+"\} ([\d.e+]+)',
        metrics_text(port, "?name[]=psmesh_processor_last_settled_timestamp_seconds"))), default=0.0)


def main_thread(workers: list[subprocess.Popen]) -> tuple[float, float]:
    """Seconds the workers' main threads (their event loops, where the stages run) have spent on a core, and
    waiting for one while ready to run (the kernel's schedstat)."""
    ran = waited = 0.0
    for worker in workers:
        on_cpu, runqueue, _ = Path(f"/proc/{worker.pid}/task/{worker.pid}/schedstat").read_text().split()
        ran, waited = ran + int(on_cpu) / 1e9, waited + int(runqueue) / 1e9
    return ran, waited


def drain(ports: list[int], workers: list[subprocess.Popen], count: int,
          logs: list[Path]) -> tuple[float, float, dict, tuple[float, float]]:
    """Seconds from the first of the workers on ``ports`` being ready (its tables recovered and its stages
    rebuilt: from then on it reads the backlog) until the last batch of any stage was settled, once they have
    routed ``count`` events and every stage has been still for 3 s; the workers' CPU seconds in that time; and
    their summed events per stage; and the seconds of that time their main threads spent on a core and waiting
    for one (the rest they waited for input or acknowledgements).

    Both ends are the workers' own times (the ready line's timestamp, the time a stage last settled a batch),
    not when this loop sees them: a stage's count moves only when a batch is settled, and the workers answer
    the metrics page only between batches, so a start taken from the first routed event would leave a whole
    router batch out of the time (in a run of four seconds, close to a second).
    """
    first = None
    while first is None:
        times = [t for t in map(ready_at, logs) if t is not None]
        if times:
            # the wait for the first fetch costs no CPU
            first, cpu_first, thread_first = min(times), cpu_seconds(workers), main_thread(workers)
        elif any(w.poll() is not None for w in workers):
            raise SystemExit(f"a worker exited; see {', '.join(map(str, logs))}")
        else:
            time.sleep(0.01)
    done_since, last = None, {}
    cpu_done = 0.0
    while True:
        totals: dict[str, float] = {}
        for port in ports:
            for stage, n in metrics(port).items():
                totals[stage] = totals.get(stage, 0) + n
        now = time.perf_counter()
        if totals.get("route", 0) >= count and totals == last and not totals.get("held"):
            if done_since is None:
                done_since, cpu_done, thread_done = now, cpu_seconds(workers), main_thread(workers)
            if now - done_since > 3.0:
                thread = (thread_done[0] - thread_first[0], thread_done[1] - thread_first[1])
                totals.pop("held", None)
                return max(map(settled_at, ports)) - first, cpu_done - cpu_first, totals, thread
        else:
            done_since = None
        last = totals
        if any(w.poll() is not None for w in workers):
            raise SystemExit(f"a worker exited; see {', '.join(map(str, logs))}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=90000,
                        help="time entries (2 change events each; 1 with --inserts-only), dated over 120 days per "
                             "30,000 (bench/backlog.py)")
    parser.add_argument("--workers", type=int, default=1,
                        help="then also read the backlog again with this many workers in a new group (scale-out)")
    parser.add_argument("--runs", type=int, default=1,
                        help="read the backlog this many times, each by a new worker in a new group (the spread)")
    parser.add_argument("--no-recovery", dest="recovery", action="store_false",
                        help="leave out the recovery measurements")
    parser.add_argument("--inserts-only", action="store_true",
                        help="time entries inserted once, as approved: no row has two versions in the backlog, so "
                             "the router has none to coalesce (one change event per entry)")
    parser.add_argument("--ceiling", action="store_true",
                        help="first measure a Faust agent that only reads (and decodes) the backlog")
    args = parser.parse_args()
    # Stopped with SIGTERM (a timeout, kill): still stop the workers and the stack in the ``finally`` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    home = Path(tempfile.mkdtemp(prefix="psmesh-bench-proc-"))
    settings = Settings(home=home, **PORTS)
    stack = LocalStack(settings)
    worker = None
    workers: list[subprocess.Popen] = []
    finished = False
    try:
        stack.up()
        topology = load_topology(ROOT / "topology.yaml")
        apply_topology(topology, AdminClient(settings.kafka_client_config()),
                       SchemaRegistryClient({"url": settings.schema_registry_url}), cluster="local")
        backlog = Backlog(settings)
        t = time.perf_counter()
        produce(backlog, args.entries, args.inserts_only)
        print(f"backlog: {backlog.count:,} change events produced in {time.perf_counter() - t:.1f}s")

        if args.ceiling:
            for mode in ("stock", "fixed", "decode", "bulk", "feed"):
                done = subprocess.run(
                    [sys.executable, str(ROOT / "bench" / "faust_ceiling.py"), mode, str(backlog.count),
                     settings.bootstrap_servers, settings.schema_registry_url],
                    env={**os.environ, **settings_env(settings), "TMPDIR": str(home)}, capture_output=True, text=True,
                    timeout=600)
                found = re.search(r"CEILING .*", done.stdout + done.stderr)
                print(found.group(0) if found else f"ceiling {mode}: no figure (exit {done.returncode})\n"
                      + done.stderr[-2000:])

        datadir, log = home / "worker", home / "worker.log"
        figures = []
        for run in range(1, args.runs + 1):
            if worker is not None:  # a run after the first: the same backlog again, in a new group and data dir
                stop(worker)
                datadir, log = home / f"worker-run{run}", home / f"worker-run{run}.log"
            app_id = f"psmesh-bench-run{run}"
            worker = start_worker(settings, datadir, log, app_id=app_id)
            elapsed, cpu, totals, (ran, waited) = drain([settings.processors_port], [worker], backlog.count, [log])
            figures.append(backlog.count / elapsed)
            staged = sum(v for k, v in totals.items() if k != "route")
            print(f"processed: {backlog.count:,} change events in {elapsed:.1f}s = {backlog.count / elapsed:,.0f} "
                  f"events/s per worker ({staged:,.0f} more stage events: project, resource, rollup); the worker "
                  f"used {cpu:.1f} CPU s, {cpu / backlog.count * 1e6:,.0f} µs per change event; its main thread was on "
                  f"a core {ran / elapsed:.0%} of the time, waited for one {waited / elapsed:.0%}, and for input or "
                  f"the broker {max(0.0, 1 - (ran + waited) / elapsed):.0%}")
            print(output_summary(settings.processors_port, backlog.count))
        if args.runs > 1:
            print(f"runs: {', '.join(f'{f:,.0f}' for f in figures)} events/s; median "
                  f"{statistics.median(figures):,.0f}")
        if args.recovery:
            before = view_rows(settings.processors_port)
            for label, wipe in (("restart on its own RocksDB data", False), ("new machine, empty data dir", True)):
                worker.send_signal(signal.SIGTERM)
                worker.wait(60)
                if wipe:
                    shutil.rmtree(datadir, ignore_errors=True)
                lines = len(log.read_text(errors="replace").splitlines())
                t = time.perf_counter()
                worker = start_worker(settings, datadir, log, app_id=app_id)  # the last run's worker, restarted
                wait_rebuilt(worker, log, lines)
                print(f"recovery ({label}): tables ready and stages rebuilt in {time.perf_counter() - t:.1f}s")
                after = view_rows(settings.processors_port)
                if after != before:
                    differ = [v for v in VIEWS if after[v] != before[v]]
                    raise SystemExit(f"views differ after the {label}: {differ}; see {log}")
                print(f"  views after it: the same {sum(map(len, after.values())):,} rows as before the restart ("
                      + ", ".join(f"{v} {len(after[v]):,}" for v in VIEWS) + ")")

        if args.workers > 1:
            one = view_rows(settings.processors_port, drop=("raised_at", "updated_at"))
            stop(worker)
            # The stack's broker gives an empty group no time to gather members (group.initial.rebalance.delay.ms=0):
            # the first worker to join would take every partition and start, and each later one cost a rebalance
            # and a changelog restore inside the time. Kafka's own default, 3 s, lets workers started together
            # join in one assignment, as on a production broker.
            stack.kafka.stop()
            KafkaServer(settings.model_copy(update={"kafka_initial_rebalance_delay_ms": 3000})).start()
            ports = [settings.processors_port + 1 + i for i in range(args.workers)]
            app_id = f"psmesh-bench-{args.workers}w"
            logs = [home / f"worker-{port}.log" for port in ports]
            workers = [start_worker(settings, home / f"worker-{port}", log, port, app_id)
                       for port, log in zip(ports, logs)]
            elapsed, cpu, _, _ = drain(ports, workers, backlog.count, logs)
            assignments = [log.read_text(errors="replace").count("Setting newly assigned partitions") for log in logs]
            print(f"{args.workers} workers (group {app_id}): {backlog.count:,} change events in {elapsed:.1f}s = "
                  f"{backlog.count / elapsed:,.0f} events/s in all, {backlog.count / elapsed / args.workers:,.0f} "
                  f"per worker; they used {cpu:.1f} CPU s, {cpu / backlog.count * 1e6:,.0f} µs per change event; "
                  f"partition assignments per worker: {', '.join(map(str, assignments))} (more than 1: a rebalance "
                  f"in the time)")
            many = view_rows(*ports, drop=("raised_at", "updated_at"))
            if one != many:
                raise SystemExit(f"the {args.workers} workers' views differ from the single worker's: "
                                 f"{[v for v in VIEWS if one[v] != many[v]]}")
            print(f"  their views, each row served by the worker that owns it: the same "
                  f"{sum(map(len, many.values())):,} rows as the single worker's")
        print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}")
        finished = True
    finally:
        for other in workers:
            if other.poll() is None:
                other.send_signal(signal.SIGTERM)
        for other in workers:
            try:
                other.wait(30)
            except subprocess.TimeoutExpired:
                other.kill()
        if worker is not None:
            stop(worker)
        stack.down()
        if finished and not os.environ.get("PSMESH_BENCH_KEEP"):
            shutil.rmtree(home, ignore_errors=True)
        else:  # the logs a failure message names, or asked to be kept
            print(f"kept {home} (the stack's and workers' logs)", file=sys.stderr)


if __name__ == "__main__":
    main()
