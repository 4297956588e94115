"""The pydantic model of ``topology.yaml`` and the loader that validates it.

``load_topology`` returns a ``Topology`` only when the whole file is valid:
every field typed and in range, every reference resolved, every rule of
``psmesh.topology.rules`` satisfied. Otherwise it raises ``TopologyError``
with *all* the problems, each located (``topics[crm.public.accounts].partitions``)
and given its YAML line. Items are validated one by one so that one broken
topic does not hide the problems of the next, and so that the cross-reference
rules still run over the valid ones.

Topic values left out of an item (partitions, replication factor, cleanup
policy, retention) are filled from ``defaults`` before validation, so a
``Topic`` in a loaded ``Topology`` is always concrete.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, model_validator

from psmesh.topology import rules
from psmesh.topology.exceptions import TopologyError
from psmesh.topology.issues import Issue, Locator, Path as DocPath, Severity
from psmesh.topology.yamlmarks import parse_yaml

#: Kafka's limits on topic names (kafka.common.internals.Topic): 249 characters
#: of ASCII letters, digits, '.', '_' and '-'; '.' and '..' are reserved.
TOPIC_NAME_MAX_LENGTH = 249
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
#: Names that become Faust app ids, consumer groups and PostgreSQL identifiers.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: PostgreSQL replication slot names: lower-case letters, digits, underscore, at most 63 (NAMEDATALEN - 1).
_SLOT = re.compile(r"^[a-z0-9_]{1,63}$")
_PG_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

MAX_PARTITIONS = 10000
CleanupPolicy = Literal["delete", "compact", "compact,delete"]
SECTIONS = ("domains", "sources", "topics", "processors", "sinks")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name: use lower-case letters, digits and '_', starting with a letter")
    return value


def _topic_name(value: str) -> str:
    if value in (".", ".."):
        raise ValueError(f"topic name {value!r} is reserved by Kafka")
    if len(value) > TOPIC_NAME_MAX_LENGTH:
        raise ValueError(f"topic name is {len(value)} characters long; Kafka allows at most {TOPIC_NAME_MAX_LENGTH}")
    if not _TOPIC_NAME.match(value):
        bad = "".join(sorted({c for c in value if not re.match(r"[a-zA-Z0-9._-]", c)}))
        raise ValueError(f"topic name {value!r} has characters Kafka does not allow ({bad!r}); legal: a-z A-Z 0-9 . _ -")
    return value


def _slot(value: str) -> str:
    if not _SLOT.match(value):
        raise ValueError(f"{value!r} is not a valid replication slot name: 1-63 lower-case letters, digits and '_'")
    return value


def _pg_identifier(value: str) -> str:
    if not _PG_IDENT.match(value):
        raise ValueError(f"{value!r} is not a plain PostgreSQL identifier (letters, digits, '_', at most 63)")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Name = Annotated[str, AfterValidator(_name)]
TopicName = Annotated[str, AfterValidator(_topic_name)]
SlotName = Annotated[str, AfterValidator(_slot)]
PgIdentifier = Annotated[str, AfterValidator(_pg_identifier)]
Email = Annotated[str, AfterValidator(_email)]
Text = Annotated[str, AfterValidator(_non_blank)]
Partitions = Annotated[int, Field(ge=1, le=MAX_PARTITIONS)]
ReplicationFactor = Annotated[int, Field(ge=1)]
#: -1 means "keep forever", as in Kafka; Kafka's retention.ms is a Java long.
RETENTION_MS_MAX = 2**63 - 1
RetentionMs = Annotated[int, Field(ge=-1, le=RETENTION_MS_MAX)]
#: A TCP port for a service's Prometheus metrics (``/metrics``).
Port = Annotated[int, Field(ge=1, le=65535)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class Owner(_Model):
    team: Text
    email: Email


class Domain(_Model):
    name: Name
    description: Text
    owner: Owner


class Source(_Model):
    """A source database captured by logical replication into ``<name>.<schema>.<table>`` topics."""

    name: Name
    domain: str
    database: PgIdentifier
    pg_schema: PgIdentifier = Field(default="public", alias="schema")
    slot: SlotName
    publication: PgIdentifier
    tables: list[PgIdentifier] = Field(min_length=1)
    description: str = ""
    #: Where its capture (``psmesh cdc run``) serves Prometheus metrics; PSMESH_CDC_METRICS_PORT_BASE overrides.
    metrics_port: Port | None = None
    #: Where the capture sets aside a change it cannot publish (a value with no Avro form); without one, such a
    #: change stops the capture.
    dead_letter: str | None = None

    def change_topic(self, table: str) -> str:
        """The topic a table's change events go to (DESIGN.md: ``<source>.<schema>.<table>``)."""
        return f"{self.name}.{self.pg_schema}.{table}"

    @property
    def change_topics(self) -> list[str]:
        return [self.change_topic(t) for t in self.tables]


class Topic(_Model):
    name: TopicName
    owner: str
    partitions: Partitions
    replication_factor: ReplicationFactor
    cleanup_policy: CleanupPolicy
    retention_ms: RetentionMs | None = None
    key_subject: Text
    value_subject: Text
    #: .avsc files, relative to the topology file. Absent for change topics,
    #: whose schemas the capture registers at run time.
    key_schema: str | None = None
    value_schema: str | None = None
    #: Processors and sinks allowed to read the topic.
    consumers: list[str] = Field(default_factory=list)
    #: The documented key: field names, in order.
    key: list[Text] = Field(min_length=1)
    description: Text

    @model_validator(mode="before")
    @classmethod
    def _default_subjects(cls, data: Any) -> Any:
        # Confluent's TopicNameStrategy: <topic>-key / <topic>-value. Without a usable
        # name the item fails on its name already; the subjects derived from it must
        # not add "required field is missing" errors of their own.
        if isinstance(data, dict):
            name = data.get("name")
            stem = name if isinstance(name, str) and name else "topic"
            data = dict(data)
            data.setdefault("key_subject", f"{stem}-key")
            data.setdefault("value_subject", f"{stem}-value")
        return data

    def topic_config(self) -> dict[str, str]:
        """The Kafka topic configs this topology manages for the topic."""
        config = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config

    def schema_files(self) -> Iterator[tuple[str, str]]:
        """(subject, path) for each schema file the topic declares."""
        if self.key_schema:
            yield self.key_subject, self.key_schema
        if self.value_schema:
            yield self.value_subject, self.value_schema


class Processor(_Model):
    name: Name
    domain: str
    description: str = ""
    inputs: list[str] = Field(min_length=1)
    outputs: list[str] = Field(default_factory=list)
    #: Names of the views (Faust tables) it maintains.
    tables: list[Name] = Field(default_factory=list)
    dead_letter: str | None = None


class SinkTarget(_Model):
    database: PgIdentifier
    tables: list[PgIdentifier] = Field(min_length=1)


class Sink(_Model):
    name: Name
    domain: str
    description: str = ""
    inputs: list[str] = Field(min_length=1)
    target: SinkTarget
    dead_letter: str | None = None
    #: Where the sink serves Prometheus metrics; PSMESH_<SINK>_METRICS_PORT overrides.
    metrics_port: Port | None = None


class Defaults(_Model):
    partitions: Partitions = 6
    replication_factor: ReplicationFactor = 3
    cleanup_policy: CleanupPolicy = "delete"
    retention_ms: RetentionMs | None = None


class Cluster(_Model):
    """Overrides for one named cluster (``--cluster NAME``)."""

    description: str = ""
    #: Replaces every topic's replication factor on this cluster.
    replication_factor: ReplicationFactor | None = None


class Topology(_Model):
    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    clusters: dict[Name, Cluster] = Field(default_factory=dict)
    #: Glob patterns of cluster topics this file does not manage (no warning in plans).
    unmanaged_topics: list[str] = Field(default_factory=list)
    domains: list[Domain] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    topics: list[Topic] = Field(default_factory=list)
    processors: list[Processor] = Field(default_factory=list)
    sinks: list[Sink] = Field(default_factory=list)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _warnings: list[Issue] = PrivateAttr(default_factory=list)

    @property
    def base_dir(self) -> Path:
        """Directory that schema paths are relative to (the topology file's)."""
        return self._base_dir

    @property
    def warnings(self) -> list[Issue]:
        """Warnings found when the file was loaded (it is valid despite them)."""
        return list(self._warnings)

    @property
    def dead_letter_topics(self) -> list[str]:
        """The dead-letter topics the sources, processors and sinks name, sorted."""
        return sorted({p.dead_letter for p in [*self.sources, *self.processors, *self.sinks] if p.dead_letter})

    def topic(self, name: str) -> Topic:
        for topic in self.topics:
            if topic.name == name:
                return topic
        raise KeyError(name)

    def schema_path(self, relative: str) -> Path:
        return self.base_dir / relative

    def replication_factor(self, topic: Topic, cluster: str | None = None) -> int:
        """The replication factor the topology asks for on ``cluster`` (before any cap to live brokers)."""
        if cluster is not None:
            override = self.clusters[cluster].replication_factor
            if override is not None:
                return override
        return topic.replication_factor

    def is_unmanaged(self, topic_name: str) -> bool:
        """Internal topics ('_…') and topics matching ``unmanaged_topics`` are not this file's business."""
        return topic_name.startswith("_") or any(fnmatch.fnmatchcase(topic_name, p) for p in self.unmanaged_topics)

    def counts(self) -> str:
        return (
            f"{len(self.domains)} domains, {len(self.sources)} sources, {len(self.topics)} topics, "
            f"{len(self.processors)} processors, {len(self.sinks)} sinks"
        )


def load_topology(path: str | Path) -> Topology:
    """Load and validate a topology file; raise ``TopologyError`` with every error found."""
    topology, issues = check_topology(path)
    if topology is None:
        raise TopologyError(issues)
    return topology


def check_topology(path: str | Path) -> tuple[Topology | None, list[Issue]]:
    """Validate a topology file: (the topology or None when invalid, every error and warning)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Issue(Severity.ERROR, "", f"cannot read the file: {exc.strerror or exc}", None, str(path))]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {column}; save the file as UTF-8"
        return None, [Issue(Severity.ERROR, "", message, line, str(path))]
    return check_text(text, file=str(path), base_dir=path.parent)


def check_text(text: str, file: str = "topology.yaml", base_dir: Path | None = None) -> tuple[Topology | None, list[Issue]]:
    """Validate topology YAML text; ``base_dir`` resolves schema paths (default: the cwd)."""
    parsed = parse_yaml(text)
    locator = Locator(parsed.data, parsed.lines, file)
    issues = [Issue(Severity.ERROR, locator.location(p), msg, line, file) for p, line, msg in parsed.problems]
    data = parsed.data
    if data is None and issues:
        return None, issues
    if not isinstance(data, dict):
        issues.append(locator.issue((), "the file must be a YAML mapping with domains, sources, topics, processors and sinks"))
        return None, issues

    base_dir = Path.cwd() if base_dir is None else base_dir
    validator = _ItemValidator(locator)
    known = {f.alias or name for name, f in Topology.model_fields.items()}
    for key in data:
        if key not in known:
            issues.append(locator.issue((key,), f"unknown section {key!r} (allowed: {', '.join(sorted(known))})"))

    raw_version = data.get("version", 1)
    if isinstance(raw_version, bool):  # YAML's true is Python's True, which equals 1
        issues.append(locator.issue(("version",), f"must be 1 (got a boolean, {str(raw_version).lower()})"))
        raw_version = 1
    version = validator.validate(Literal[1], raw_version, ("version",))
    # An empty section ("defaults:" alone) is its default; anything else must have the right type:
    # `defaults: 0` or `unmanaged_topics: ""` is an error, not an empty section.
    defaults = validator.validate(Defaults, _or_empty(data.get("defaults"), {}), ("defaults",)) or Defaults()
    clusters = validator.validate(dict[Name, Cluster], _or_empty(data.get("clusters"), {}), ("clusters",))
    unmanaged = validator.validate(list[str], _or_empty(data.get("unmanaged_topics"), []), ("unmanaged_topics",))

    raw_sections: dict[str, list[Any]] = {}
    for section in SECTIONS:
        raw = data.get(section)
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            issues.append(locator.issue((section,), f"must be a list (got {_type_name(raw)})"))
            raw = []
        raw_sections[section] = raw

    topic_defaults = defaults.model_dump(exclude_none=True)
    models: dict[str, type[_Model]] = {
        "domains": Domain,
        "sources": Source,
        "topics": Topic,
        "processors": Processor,
        "sinks": Sink,
    }
    items: dict[str, list[tuple[int, Any]]] = {}
    for section, model in models.items():
        valid = []
        for index, raw in enumerate(raw_sections[section]):
            if section == "topics" and isinstance(raw, dict):
                raw = {**topic_defaults, **raw}
            item = validator.validate(model, raw, (section, index))
            if item is not None:
                valid.append((index, item))
        items[section] = valid
    issues.extend(validator.issues)

    issues.extend(rules.check(rules.Parts(raw=raw_sections, items=items, base_dir=base_dir), locator))
    issues.sort(key=lambda i: (i.line is None, i.line or 0))  # read top to bottom, like the file
    if any(i.is_error for i in issues):
        return None, issues

    topology = Topology(
        version=version,
        defaults=defaults,
        clusters=clusters or {},
        unmanaged_topics=unmanaged or [],
        **{section: [item for _, item in items[section]] for section in SECTIONS},
    )
    topology._base_dir = base_dir
    topology._warnings = [i for i in issues if not i.is_error]
    return topology, issues


def _or_empty(value: Any, empty: Any) -> Any:
    return empty if value is None else value


_ADAPTERS: dict[Any, TypeAdapter] = {}


class _ItemValidator:
    """Validates one value against a type and turns pydantic's errors into located issues."""

    def __init__(self, locator: Locator):
        self.locator = locator
        self.issues: list[Issue] = []

    def validate(self, tp: Any, value: Any, path: DocPath) -> Any:
        adapter = _ADAPTERS.get(tp)
        if adapter is None:
            adapter = _ADAPTERS[tp] = TypeAdapter(tp)
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = tuple(p for p in error["loc"] if isinstance(p, (str, int)))
                self.issues.append(self.locator.issue((*path, *loc), _message(error, tp, loc)))
            return None


def _message(error: dict[str, Any], tp: Any, loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_fields(tp, loc[:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown field {loc[-1]!r}{hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping (got {_type_name(value)})"
    if kind == "list_type":
        return f"must be a list (got {_type_name(value)})"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    ctx = error.get("ctx") or {}
    got = f" (got {value!r})"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}{got}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}{got}"
    if kind == "literal_error":
        return f"must be {ctx['expected']}{got}"
    if kind == "too_short":
        return f"must have at least {ctx['min_length']} item(s)"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}{got}"
    message = str(error["msg"])
    if isinstance(value, (str, int, float, bool)) or value is None:
        message += f" (got {value!r})"
    return message


_EXPECTED = {"int_type": "an integer", "string_type": "a string", "bool_type": "true or false"}


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a number",
             type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def _allowed_fields(tp: Any, loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the model found at ``loc`` inside ``tp``, for 'unknown field' hints."""
    current = tp
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    # Optional[X] / Annotated[X, ...] → X
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    args = [a for a in get_args(tp) if a is not type(None)]
    if args and get_origin(tp) not in (list, dict, Literal) and len(args) == 1:
        return _unwrap(args[0])
    return tp
