"""``psmesh dlq``: read what the captures, processors and sinks set aside, with the reason and the original bytes.

A processor or sink that cannot handle an event sends it to its dead-letter
topic (topology.yaml's ``dead_letter``: ``dlq.processors``, ``dlq.sinks``)
in the contract of schemas/dlq/: where the event came from (topic,
partition, offset), which stage refused it, why, when, and its key and
value as they were. A capture sets aside a change it cannot publish (a value
with no Avro form) on ``dlq.capture``: the change topic it was bound for,
partition -1, its LSN as the offset (-1 in a snapshot), and the row as
PostgreSQL sent it. The topics keep them for good (``retention_ms: -1``).

An operator reads the letters waiting with ``psmesh dlq list``, deals with
them (fixes the source row or the target's constraint:
docs/operating.md), then marks them handled with ``psmesh dlq ack``: that commits the
end of each dead-letter topic as the consumer group ``psmesh-dlq``'s
offset. ``psmesh status`` warns about the letters after that offset only,
and ``list`` shows those unless ``--all``. Nothing is deleted.

The original key and value are shown decoded where they can be: Avro in
the Confluent wire format through the registry (a change event, a view or
derived event), else JSON (a row the router forwarded to a stage), else
base64.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import click

from psmesh.config import Settings, load_settings

#: How long a read waits for the broker before giving up on a partition's next record.
TIMEOUT = 10.0
#: The consumer group whose committed offsets mark where the letters not yet acknowledged begin.
ACK_GROUP = "psmesh-dlq"


@dataclass(frozen=True)
class Letter:
    """One dead letter: the record of schemas/dlq/*-value.avsc, and where it sits in its dead-letter topic."""

    dlq: str
    dlq_partition: int
    dlq_offset: int
    record: dict[str, Any]

    @property
    def origin(self) -> str:
        if self.record["partition"] == -1:  # a capture's letter: the change never reached a partition
            offset = self.record["offset"]
            where = "snapshot" if offset < 0 else f"LSN {offset >> 32:X}/{offset & 0xFFFFFFFF:X}"
            return f"{self.record['topic']}@{where}"
        return f"{self.record['topic']}[{self.record['partition']}]@{self.record['offset']}"


@dataclass(frozen=True)
class Span:
    """One partition of a dead-letter topic: its first offset, where the letters not acknowledged begin, its end."""

    topic: str
    partition: int
    low: int
    acked: int
    high: int

    @property
    def waiting(self) -> int:
        return self.high - self.acked


def ack_consumer(settings: Settings) -> Any:
    """A consumer of the acknowledging group (never subscribed: it reads and commits assigned partitions)."""
    from confluent_kafka import Consumer

    return Consumer({**settings.kafka_client_config(), "log_level": 0, "group.id": ACK_GROUP,
                     "enable.auto.commit": False, "enable.partition.eof": True})


def spans(consumer: Any, topic: str, partitions: Any) -> list[Span]:
    """Each partition's span; with nothing acknowledged yet (or the offset acknowledged gone), every letter
    waits."""
    from confluent_kafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    out = []
    for tp in consumer.committed(tps, timeout=TIMEOUT):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=TIMEOUT, cached=False)
        acked = min(max(tp.offset, low), high)  # an offset never committed is negative
        out.append(Span(topic, tp.partition, low, acked, high))
    return out


def _existing(settings: Settings, topics: list[str]) -> dict[str, Any]:
    """The metadata of ``topics``; a topic that does not exist is a :class:`click.ClickException` naming it."""
    from confluent_kafka.admin import AdminClient

    existing = AdminClient({**settings.kafka_client_config(), "log_level": 0}).list_topics(timeout=TIMEOUT).topics
    missing = [t for t in topics if t not in existing]
    if missing:
        raise click.ClickException(f"no such topic: {', '.join(missing)} (psmesh topology apply creates them)")
    return {t: existing[t] for t in topics}


def read_letters(settings: Settings, topics: list[str], decode: "_Decoder", everything: bool = False
                 ) -> Iterator[Letter]:
    """The dead letters of ``topics`` not acknowledged yet (``everything``: all of them), partition by partition,
    up to each partition's end when it is reached.

    A record that is not a dead letter (not the registry's Avro) is given with its bytes and the reason it could
    not be read.
    """
    from confluent_kafka import TopicPartition

    existing = _existing(settings, topics)
    consumer = ack_consumer(settings)
    try:
        for topic in topics:
            for span in spans(consumer, topic, existing[topic].partitions):
                start = span.low if everything else span.acked
                if span.high <= start:
                    continue
                consumer.assign([TopicPartition(topic, span.partition, start)])
                yield from _partition(consumer, decode, topic, span.partition, span.high)
    finally:
        consumer.close()


def _partition(consumer: Any, decode: "_Decoder", topic: str, partition: int, high: int) -> Iterator[Letter]:
    from confluent_kafka import KafkaError

    while True:
        msg = consumer.poll(TIMEOUT)
        if msg is None:
            raise click.ClickException(f"{topic}[{partition}]: no record within {TIMEOUT:.0f}s before offset {high}")
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            raise click.ClickException(f"{topic}[{partition}]: {error.str()}")
        try:
            record = decode.letter(msg.value())
        except Unreadable as exc:  # not a dead letter of ours: shown as it is, with why
            record = {"topic": "?", "partition": -1, "offset": -1, "stage": "?",
                      "reason": f"unreadable dead letter: {exc}", "key": msg.key(),
                      "value": msg.value(), "failed_at": None}
        yield Letter(topic, partition, msg.offset(), record)
        if msg.offset() + 1 >= high:
            return


class Unreadable(Exception):
    """A dead-letter topic's record that is not a dead letter this decoder can read."""


class _Decoder:
    """Confluent-framed Avro through the registry, each writer schema fetched once."""

    def __init__(self, registry: Any, registry_url: str) -> None:
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        self._registry, self._url = registry, registry_url
        self._avro = AvroDeserializer(registry)

    def letter(self, data: bytes | None) -> dict[str, Any]:
        """A dead letter's record; :class:`Unreadable` for bytes that are not one, and a
        :class:`click.ClickException` when the registry cannot tell (an outage is not a bad letter)."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if not data or len(data) < 5 or data[0] != 0:
            raise Unreadable("not Avro in the Confluent wire format")
        schema_id = int.from_bytes(data[1:5], "big")
        try:
            self._registry.get_schema(schema_id)  # the client keeps it: the deserializer asks for it again
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise Unreadable(f"schema id {schema_id} is not in the registry") from exc
            raise click.ClickException(f"schema registry at {self._url}: {exc}") from exc
        except Exception as exc:
            raise click.ClickException(f"schema registry at {self._url} unreachable: {exc}") from exc
        try:
            return self._avro(data, None)
        except Exception as exc:
            raise Unreadable(f"{type(exc).__name__}: {exc}") from exc

    def original(self, data: bytes | None) -> Any:
        """An original key or value: decoded Avro or JSON where it is one, else ``{"base64": ...}``."""
        if data is None:
            return None
        if data[:1] == b"\x00" and len(data) > 5:
            try:
                return self._avro(data, None)
            except Exception:
                pass
        try:
            return json.loads(data)
        except ValueError:
            return {"base64": base64.b64encode(data).decode()}


class Republish:
    """The projects and resources whose view rows or derived events a sink refused (the letters of a stage
    ``*_sink``): what ``psmesh processors republish`` sends again once the sink's target is fixed."""

    #: More than this many, and the hint names the whole command rather than each project and resource.
    MOST = 10
    #: The views of the rollup stage: their rows belong to no project or resource, and ``--stage rollup`` (a
    #: single partition, some hundreds of rows) is the finest request that sends them again.
    ROLLUP_TOPICS = frozenset({"views.skill_week", "views.pipeline", "views.bookings"})

    def __init__(self) -> None:
        self.projects: dict[str, None] = {}
        self.resources: dict[int, None] = {}
        self.rollup = False
        self.other = False
        #: a sink's letter of a change event (the reporting sink mirrors some source tables): no republish sends it
        self.changes = False
        #: a capture's letter: the row comes again only when it is corrected at the source
        self.captured = False

    def add(self, decoder: "_Decoder", record: dict[str, Any]) -> None:
        if record["stage"].startswith("capture_"):
            self.captured = True
            return
        if not record["stage"].endswith("_sink"):
            return  # a processor stage's letter, of a source's change event: read again only when it changes
        if record.get("topic") in self.ROLLUP_TOPICS:
            self.rollup = True
            return
        key, value = decoder.original(record["key"]), decoder.original(record["value"])
        if isinstance(value, dict) and "op" in value and ("after" in value or "before" in value):
            self.changes = True  # a change event's envelope, whatever its topic is called
            return
        code = next((o["project_code"] for o in (key, value)
                     if isinstance(o, dict) and isinstance(o.get("project_code"), str)), None)
        if code is not None:
            self.projects[code] = None
        elif isinstance(key, dict) and isinstance(key.get("resource_id"), int):  # a resource_week row
            self.resources[key["resource_id"]] = None
        else:
            self.other = True  # a record that could not be read, say

    def hint(self) -> str | None:
        """What to run once the targets are fixed; None when no letter is a sink's."""
        said = []
        if self.projects or self.resources or self.rollup or self.other:
            said.append(self._republish())
        if self.captured:
            said.append("a capture's letter is a row whose value has no Avro form (a date of infinity, a NaN amount): "
                        "correct the row in its source database, whose next version the capture publishes as usual; "
                        "then `psmesh dlq ack`")
        if self.changes:
            said.append("a sink's letter of a change topic comes again only with its row's next version: once the "
                        "target is fixed, update the row in its source database (the capture publishes it), then "
                        "`psmesh dlq ack`")
        return "\n".join(said) or None

    def _republish(self) -> str:
        command = "psmesh processors republish"
        named = [*(f"--project {code}" for code in self.projects), *(f"--resource {rid}" for rid in self.resources)]
        if self.other or len(named) > self.MOST:
            commands = [command]
        else:  # --stage and --project/--resource are one request or the other: two commands when both are needed
            commands = [f"{command} {' '.join(named)}"] if named else []
            if self.rollup:
                commands.append(f"{command} --stage rollup")
        said = " and ".join(f"`{c}`" for c in commands)
        return (f"once the sink's target is fixed, {said} {'send' if len(commands) > 1 else 'sends'} the refused "
                "view rows and derived events again (the sinks keep what they have); then `psmesh dlq ack`")


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    raise TypeError(f"{type(value).__name__} is not JSON")


@click.group()
def dlq() -> None:
    """Dead letters: what a capture, processor or sink could not handle, with the reason."""


@dlq.command("list")
@click.argument("topics", nargs=-1)
@click.option("--file", "topology_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Topology file whose dead-letter topics are read when no TOPIC is named (default: ./topology.yaml).")
@click.option("--stage", default=None, help="Only the letters of this processor stage or sink (e.g. route, erp_sink).")
@click.option("--origin", default=None, help="Only the letters of events read from this topic.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after this many letters.")
@click.option("--all", "everything", is_flag=True, help="Also the letters acknowledged already (psmesh dlq ack).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line, with the original key and value decoded where they can be.")
def list_command(topics: tuple[str, ...], topology_file: Path | None, stage: str | None, origin: str | None,
                 limit: int | None, everything: bool, as_json: bool) -> None:
    """Read the dead letters waiting in TOPIC... (default: every dead-letter topic of the topology), oldest first
    per partition: when, which stage, where the event came from, and why."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    names = list(topics) or _topology_dead_letters(topology_file)
    settings = load_settings()
    url = settings.schema_registry_url
    decoder = _Decoder(SchemaRegistryClient({"url": url}), url)
    shown = 0
    republish = Republish()
    for letter in read_letters(settings, names, decoder, everything):
        record = letter.record
        if (stage and record["stage"] != stage) or (origin and record["topic"] != origin):
            continue
        if as_json:
            click.echo(json.dumps({
                "dlq": letter.dlq, "dlq_partition": letter.dlq_partition, "dlq_offset": letter.dlq_offset,
                **{k: v for k, v in record.items() if k not in ("key", "value")},
                "key": decoder.original(record["key"]), "value": decoder.original(record["value"]),
            }, default=_json_default, ensure_ascii=False))
        else:
            republish.add(decoder, record)
            failed_at = record["failed_at"].isoformat(timespec="seconds") if record["failed_at"] else "?"
            click.echo(f"{letter.dlq}  {failed_at}  {record['stage']}  {letter.origin}  {record['reason']}")
        shown += 1
        if limit is not None and shown >= limit:
            break
    if not as_json:
        click.echo(f"{shown:,} dead letter(s)", err=True)
        hint = republish.hint()
        if hint:
            click.echo(hint, err=True)


@dlq.command("ack")
@click.argument("topics", nargs=-1)
@click.option("--file", "topology_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Topology file whose dead-letter topics are acknowledged when no TOPIC is named.")
def ack_command(topics: tuple[str, ...], topology_file: Path | None) -> None:
    """Mark every dead letter in TOPIC... so far as handled (default: every dead-letter topic of the topology):
    psmesh status stops warning about them and psmesh dlq list stops showing them (--all still does). Nothing
    is deleted. A letter that arrives after this call waits as before."""
    from confluent_kafka import TopicPartition

    names = list(topics) or _topology_dead_letters(topology_file)
    settings = load_settings()
    existing = _existing(settings, names)
    consumer = ack_consumer(settings)
    try:
        for topic in names:
            found = spans(consumer, topic, existing[topic].partitions)
            consumer.commit(offsets=[TopicPartition(topic, s.partition, s.high) for s in found], asynchronous=False)
            ends = ", ".join(f"[{s.partition}]@{s.high}" for s in found)
            click.echo(f"{topic}: {sum(s.waiting for s in found):,} dead letter(s) acknowledged, up to {ends}")
    finally:
        consumer.close()


def _topology_dead_letters(topology_file: Path | None) -> list[str]:
    from psmesh.topology.cli import default_topology_path
    from psmesh.topology.exceptions import TopologyError
    from psmesh.topology.model import load_topology

    try:
        topology = load_topology(topology_file or default_topology_path())
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from exc
    names = topology.dead_letter_topics
    if not names:
        raise click.ClickException("the topology names no dead-letter topic; name one: psmesh dlq list TOPIC")
    return names
