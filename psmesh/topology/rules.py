"""The rules a topology must satisfy beyond the field types of ``model.py``.

Each rule is a pure function over the validated items (plus the raw lists,
so that names of items that failed type validation still count as declared
and do not cause a cascade of "unknown topic" errors) and yields located
issues. Errors make the file invalid; warnings do not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psmesh.topology.contract import DOMAIN_TABLES
from psmesh.topology.issues import Issue, Locator

if TYPE_CHECKING:  # model.py runs these rules; the models are only needed as types here
    from psmesh.topology.model import Processor, Sink, Source, Topic


@dataclass(frozen=True)
class Parts:
    """A topology document being validated."""

    #: The raw lists of each section, as parsed.
    raw: dict[str, list[Any]]
    #: (index in the raw list, model) of each item that passed type validation.
    items: dict[str, list[tuple[int, Any]]]
    base_dir: Path

    def declared(self, section: str) -> list[str]:
        """Names declared in a section, valid items or not."""
        return [name for _, name in _named(self.raw[section])]

    def consumers(self) -> dict[str, list[str]]:
        """Each declared topic's consumers as written, valid topic or not (so one bad field hides no rule)."""
        out: dict[str, list[str]] = {}
        for item in self.raw["topics"]:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                listed = item.get("consumers") or []
                out.setdefault(item["name"], [c for c in listed if isinstance(c, str)] if isinstance(listed, list) else [])
        return out

    def topics(self) -> dict[str, Topic]:
        out: dict[str, Topic] = {}
        for _, topic in self.items["topics"]:
            out.setdefault(topic.name, topic)
        return out


Rule = Callable[[Parts, Locator], Iterator[Issue]]
_SINGULAR = {"domains": "domain", "sources": "source", "topics": "topic", "processors": "processor", "sinks": "sink"}


def unique_names(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """Names are unique per section; processors and sinks also share one namespace (consumer names)."""
    for section, singular in _SINGULAR.items():
        first: dict[str, int] = {}
        for index, name in _named(parts.raw[section]):
            if name in first:
                where = _where(loc, (section, first[name]))
                yield loc.issue((section, index, "name"), f"duplicate {singular} name {name!r} (first defined at {where})")
            else:
                first[name] = index
    processors = set(parts.declared("processors"))
    for index, name in _named(parts.raw["sinks"]):
        if name in processors:
            yield loc.issue(
                ("sinks", index, "name"),
                f"{name!r} is also a processor's name; processors and sinks share one namespace (topic consumers)",
            )


def metrics_ports_are_distinct(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """Two services on one host cannot serve their metrics on the same port."""
    first: dict[int, tuple[str, int]] = {}
    for section in ("sources", "sinks"):
        for index, item in parts.items[section]:
            port = item.metrics_port
            if port is None:
                continue
            if port in first:
                where = _where(loc, (first[port][0], first[port][1], "metrics_port"))
                yield loc.issue((section, index, "metrics_port"), f"metrics port {port} is already used at {where}")
            else:
                first[port] = (section, index)


def known_domains(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """Every source, topic, processor and sink belongs to a declared domain."""
    domains = parts.declared("domains")
    listing = ", ".join(domains) if domains else "none declared"
    for section, field in (("sources", "domain"), ("topics", "owner"), ("processors", "domain"), ("sinks", "domain")):
        for index, item in parts.items[section]:
            value = getattr(item, field)
            if value not in domains:
                yield loc.issue((section, index, field), f"unknown domain {value!r} (domains: {listing})")


def topic_names_do_not_collide(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """Kafka refuses a topic whose name equals another's with '.' and '_' swapped (they collide in metric names)."""
    seen: dict[str, str] = {}
    for index, topic in parts.items["topics"]:
        folded = topic.name.replace(".", "_")
        other = seen.setdefault(folded, topic.name)
        if other != topic.name:
            yield loc.issue(
                ("topics", index, "name"),
                f"topic {topic.name!r} collides with {other!r}: Kafka treats '.' and '_' alike and refuses to create both",
            )


def schema_files_exist(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """Declared .avsc files exist (relative to the topology file) and are Avro schemas (fastavro parses them)."""
    for index, topic in parts.items["topics"]:
        for field in ("key_schema", "value_schema"):
            relative = getattr(topic, field)
            if relative is None:
                continue
            path = parts.base_dir / relative
            if not path.is_file():
                yield loc.issue(
                    ("topics", index, field), f"schema file {relative!r} does not exist (looked for {path.absolute()})"
                )
                continue
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield loc.issue(("topics", index, field), f"schema file {relative!r} is not valid JSON: {exc}")
                continue
            problem = _not_avro(schema)
            if problem:
                yield loc.issue(("topics", index, field), f"schema file {relative!r} is not an Avro schema: {problem}")


def sources_are_captured_into_declared_topics(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """Each captured table has its change topic declared; slots are unique (they are cluster-wide in PostgreSQL)."""
    topics = parts.topics()
    declared = set(parts.declared("topics"))
    slots: dict[str, str] = {}
    publications: dict[tuple[str, str], str] = {}
    for index, source in parts.items["sources"]:
        source: Source
        if source.slot in slots:
            yield loc.issue(
                ("sources", index, "slot"),
                f"replication slot {source.slot!r} is also used by source {slots[source.slot]!r}; "
                "slots are per PostgreSQL cluster, each source needs its own",
            )
        slots.setdefault(source.slot, source.name)
        publication = (source.database, source.publication)
        if publication in publications:
            yield loc.issue(
                ("sources", index, "publication"),
                f"publication {source.publication!r} of database {source.database!r} is also used by source "
                f"{publications[publication]!r}; a capture adds its tables to its publication, so each source would "
                "receive the other's tables too: give each source its own",
            )
        publications.setdefault(publication, source.name)
        contract = DOMAIN_TABLES.get(source.database)
        if contract is None:
            yield loc.warning(
                ("sources", index, "database"),
                f"database {source.database!r} is not one of DOMAIN.md's ({', '.join(DOMAIN_TABLES)}); tables not checked",
            )
        seen: set[str] = set()
        for t_index, table in enumerate(source.tables):
            path = ("sources", index, "tables", t_index)
            if table in seen:
                yield loc.issue(path, f"table {table!r} is listed twice")
                continue
            seen.add(table)
            if contract is not None and table not in contract:
                yield loc.warning(
                    path, f"table {table!r} is not in DOMAIN.md's {source.database} tables ({', '.join(contract)})"
                )
            topic_name = source.change_topic(table)
            topic = topics.get(topic_name)
            if topic_name not in declared:
                yield loc.issue(path, f"captures {source.database}.{table} but its topic {topic_name!r} is not declared in topics")
            elif topic is not None and topic.owner != source.domain:
                yield loc.warning(
                    path, f"change topic {topic_name!r} is owned by {topic.owner!r}, not by the source's domain {source.domain!r}"
                )


def references_resolve(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """Processors and sinks read, write and dead-letter only declared topics, and read only where they are consumers;
    a source dead-letters only to a declared topic."""
    consumers = parts.consumers()
    for index, source in parts.items["sources"]:
        if source.dead_letter is not None and source.dead_letter not in consumers:
            yield loc.issue(("sources", index, "dead_letter"), f"unknown topic {source.dead_letter!r}")
    for section in ("processors", "sinks"):
        for index, item in parts.items[section]:
            item: Processor | Sink
            kind = _SINGULAR[section]
            for i, name in enumerate(item.inputs):
                path = (section, index, "inputs", i)
                if name not in consumers:
                    yield loc.issue(path, f"unknown topic {name!r}")
                elif item.name not in consumers[name]:
                    yield loc.issue(
                        path,
                        f"{kind} {item.name!r} reads {name!r} but is not in that topic's consumers "
                        f"({', '.join(consumers[name]) or 'empty'}); add it to topics[{name}].consumers",
                    )
            for i, name in enumerate(getattr(item, "outputs", [])):
                if name not in consumers:
                    yield loc.issue((section, index, "outputs", i), f"unknown topic {name!r}")
            if item.dead_letter is not None and item.dead_letter not in consumers:
                yield loc.issue((section, index, "dead_letter"), f"unknown topic {item.dead_letter!r}")


def consumers_are_known(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """A topic's consumers are declared processors or sinks; one that does not read the topic is worth a warning."""
    readers: dict[str, set[str]] = {}
    for section in ("processors", "sinks"):
        for _, item in parts.items[section]:
            readers[item.name] = set(item.inputs)
    names = set(parts.declared("processors")) | set(parts.declared("sinks"))
    for index, topic in parts.items["topics"]:
        for i, consumer in enumerate(topic.consumers):
            path = ("topics", index, "consumers", i)
            if consumer not in names:
                yield loc.issue(path, f"unknown consumer {consumer!r}: not a declared processor or sink")
            elif consumer in readers and topic.name not in readers[consumer]:
                yield loc.warning(path, f"{consumer!r} is allowed to read {topic.name!r} but does not list it in its inputs")


def single_writer_per_topic(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """One writer per topic: a source's capture for change topics, else exactly one processor.

    Dead-letter topics are exempt: every processor and sink may dead-letter to a shared one.
    """
    writer: dict[str, str] = {}
    for _, source in parts.items["sources"]:
        for topic in source.change_topics:
            writer.setdefault(topic, f"the capture of source {source.name!r}")
    for index, processor in parts.items["processors"]:
        for i, topic in enumerate(processor.outputs):
            if topic in writer:
                yield loc.issue(
                    ("processors", index, "outputs", i),
                    f"topic {topic!r} is already written by {writer[topic]}; a topic has a single writer",
                )
            else:
                writer[topic] = f"processor {processor.name!r}"


def views_have_one_owner(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """A view (Faust table) is maintained by one processor."""
    owner: dict[str, str] = {}
    for index, processor in parts.items["processors"]:
        for i, table in enumerate(processor.tables):
            if table in owner and owner[table] != processor.name:
                yield loc.issue(
                    ("processors", index, "tables", i), f"view {table!r} is already maintained by processor {owner[table]!r}"
                )
            owner.setdefault(table, processor.name)


def dead_letters_are_kept(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """A dead-letter topic holds only letters and keeps them: not a change topic or a processor's output, never
    compacted (letters of one key would replace each other); a finite retention deletes them (a warning)."""
    topics = parts.topics()
    written: dict[str, str] = {}
    for _, source in parts.items["sources"]:
        for topic in source.change_topics:
            written.setdefault(topic, f"the change topic of source {source.name!r}")
    for _, processor in parts.items["processors"]:
        for topic in processor.outputs:
            written.setdefault(topic, f"an output of processor {processor.name!r}")
    for section in ("sources", "processors", "sinks"):
        for index, item in parts.items[section]:
            name = item.dead_letter
            if name is None:
                continue
            path = (section, index, "dead_letter")
            if name in written:
                yield loc.issue(path, f"dead-letter topic {name!r} is {written[name]}; letters need a topic of their own")
            topic = topics.get(name)
            if topic is None:
                continue
            if "compact" in topic.cleanup_policy:
                yield loc.issue(path, f"dead-letter topic {name!r} is compacted ({topic.cleanup_policy}): letters "
                                      "with one key would replace each other; use cleanup_policy: delete")
            elif topic.retention_ms is not None and topic.retention_ms != -1:
                yield loc.warning(path, f"dead-letter topic {name!r} deletes letters after retention_ms "
                                        f"{topic.retention_ms}, handled or not; -1 keeps them")


def sink_inputs_are_written(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """A sink reads what a capture or a processor of this topology writes (a warning: another writer may)."""
    written = {t for _, source in parts.items["sources"] for t in source.change_topics}
    written |= {t for _, processor in parts.items["processors"] for t in processor.outputs}
    declared = set(parts.declared("topics"))
    for index, sink in parts.items["sinks"]:
        for i, name in enumerate(sink.inputs):
            if name in declared and name not in written:
                yield loc.warning(("sinks", index, "inputs", i),
                                  f"sink {sink.name!r} reads {name!r}, which no source captures and no processor "
                                  "lists in its outputs")


def lists_have_no_repeats(parts: Parts, loc: Locator) -> Iterator[Issue]:
    """An entry listed twice in inputs, outputs, tables or consumers is a typo or a merge left over."""
    fields = {"topics": (("consumers",),), "processors": (("inputs",), ("outputs",), ("tables",)),
              "sinks": (("inputs",), ("target", "tables"))}
    for section, paths in fields.items():
        for index, item in parts.items[section]:
            for path in paths:
                values = item
                for part in path:
                    values = getattr(values, part)
                seen: set[str] = set()
                for i, value in enumerate(values):
                    if value in seen:
                        yield loc.issue((section, index, *path, i), f"{value!r} is listed twice")
                    seen.add(value)


RULES: tuple[Rule, ...] = (
    unique_names,
    known_domains,
    topic_names_do_not_collide,
    schema_files_exist,
    sources_are_captured_into_declared_topics,
    references_resolve,
    consumers_are_known,
    single_writer_per_topic,
    views_have_one_owner,
    metrics_ports_are_distinct,
    dead_letters_are_kept,
    sink_inputs_are_written,
    lists_have_no_repeats,
)


def check(parts: Parts, loc: Locator) -> list[Issue]:
    return [issue for rule in RULES for issue in rule(parts, loc)]


def _not_avro(schema: Any) -> str | None:
    """Why fastavro refuses ``schema`` as an Avro schema, or None when it parses."""
    import fastavro
    from fastavro.schema import SchemaParseException, UnknownType

    try:
        fastavro.parse_schema(schema)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError, AttributeError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _named(raw: list[Any]) -> Iterator[tuple[int, str]]:
    for index, item in enumerate(raw):
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            yield index, item["name"]


def _where(loc: Locator, path: tuple[str | int, ...]) -> str:
    line = loc.line(path)
    return f"{loc.location(path)}, line {line}" if line is not None else loc.location(path)
