"""HTTP routes of the Confluent Schema Registry REST API, as clients use it.

Paths, query parameters, bodies, status codes and ``error_code`` values
follow Confluent's "Schema Registry API Reference" so that
``confluent_kafka.schema_registry.SchemaRegistryClient``, the Java client,
Kafka Connect and Flink work unchanged. Responses are
``application/vnd.schemaregistry.v1+json``; request bodies are read as JSON
whatever their content type (``application/vnd.schemaregistry.v1+json``,
``application/json``, ``application/octet-stream``). The routes only parse
and format: every rule lives in :class:`~psmesh.registry.store.SchemaStore`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from psmesh.registry.canonical import AVRO, SUPPORTED_SCHEMA_TYPES, AvroSchema, parse_avro
from psmesh.registry.compatibility import CompatibilityLevel
from psmesh.registry.exceptions import (
    InvalidSchemaError,
    InvalidVersionError,
    MalformedRequestError,
    RegistryError,
    SchemaNotFoundError,
    SubjectConfigNotFoundError,
    SubjectNotFoundError,
)
from psmesh.registry.store import LATEST, SchemaStore, SchemaVersion, VersionSpec

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
STORE_KEY = web.AppKey("store", SchemaStore)

_MAX_VERSION = 2**31 - 1


class RegistryMetrics:
    """Prometheus metrics of one registry app, in a registry of their own."""

    def __init__(self, store: SchemaStore) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "psmesh_registry_requests",
            "HTTP requests served, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "psmesh_registry_request_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            registry=self.registry,
        )
        self.registered = Counter(
            "psmesh_registry_schemas_registered",
            "New subject versions registered by this process.",
            registry=self.registry,
        )
        schemas = Gauge(
            "psmesh_registry_schemas",
            "Distinct schema ids currently served.",
            registry=self.registry,
        )
        schemas.set_function(lambda: store.index.schema_count)
        subjects = Gauge(
            "psmesh_registry_subjects",
            "Subjects with at least one live version.",
            registry=self.registry,
        )
        subjects.set_function(lambda: len(store.index.subjects()))


METRICS_KEY = web.AppKey("metrics", RegistryMetrics)


# --------------------------------------------------------------------------
# request and response helpers
# --------------------------------------------------------------------------


def reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, content_type=CONTENT_TYPE)


def _flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter; the Python client sends ``True``/``False``."""
    return request.query.get(name, "false").strip().lower() in ("true", "1", "yes")


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise MalformedRequestError(f"query parameter {name} must be an integer, got {raw!r}") from exc


def _paginate(items: list[Any], request: web.Request) -> list[Any]:
    offset = max(0, _int_param(request, "offset", 0))
    limit = _int_param(request, "limit", -1)
    items = items[offset:]
    return items if limit < 0 else items[:limit]


def _version(raw: str) -> VersionSpec:
    """A version path segment: 1..2^31-1, ``latest``, or -1 (Confluent's alias of latest)."""
    if raw.lower() == LATEST:
        return LATEST
    try:
        number = int(raw)
    except ValueError:
        raise InvalidVersionError(raw) from None
    if number == -1:
        return LATEST
    if not 1 <= number <= _MAX_VERSION:
        raise InvalidVersionError(raw)
    return number


def _schema_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SchemaNotFoundError(f"Schema {raw} not found") from None


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedRequestError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise MalformedRequestError("the request body must be a JSON object")
    return body


async def _schema_from_body(request: web.Request) -> AvroSchema:
    """The schema of a register, lookup or compatibility request; 42201 for what this registry cannot take."""
    body = await _body(request)
    schema_type = body.get("schemaType") or AVRO
    if str(schema_type).upper() not in SUPPORTED_SCHEMA_TYPES:
        raise InvalidSchemaError(
            f"Invalid schema: schemaType {schema_type} is not supported; this registry serves AVRO schemas only"
        )
    if body.get("references"):
        raise InvalidSchemaError(
            "Invalid schema: schema references are not supported by this registry; "
            "register the schema with its named types inlined"
        )
    for unsupported in ("metadata", "ruleSet"):
        if body.get(unsupported):
            raise InvalidSchemaError(
                f"Invalid schema: {unsupported} (data contracts) is not supported by this registry"
            )
    return parse_avro(body.get("schema"))


def _version_body(v: SchemaVersion) -> dict[str, Any]:
    body: dict[str, Any] = {"subject": v.subject, "version": v.version, "id": v.schema_id}
    if v.schema_type != AVRO:
        body["schemaType"] = v.schema_type
    body["schema"] = v.schema
    return body


def _store(request: web.Request) -> SchemaStore:
    return request.app[STORE_KEY]


# --------------------------------------------------------------------------
# routes
# --------------------------------------------------------------------------

routes = web.RouteTableDef()


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    return reply({})


@routes.get("/schemas/types")
async def schema_types(request: web.Request) -> web.Response:
    return reply(list(SUPPORTED_SCHEMA_TYPES))


@routes.get("/schemas/ids/{id}")
async def schema_by_id(request: web.Request) -> web.Response:
    stored = _store(request).index.schema_by_id(_schema_id(request.match_info["id"]))
    body: dict[str, Any] = {}
    if stored.schema_type != AVRO:
        body["schemaType"] = stored.schema_type
    body["schema"] = stored.text
    return reply(body)


@routes.get("/schemas/ids/{id}/schema")
async def schema_text_by_id(request: web.Request) -> web.Response:
    stored = _store(request).index.schema_by_id(_schema_id(request.match_info["id"]))
    return web.Response(text=stored.text, content_type=CONTENT_TYPE)


@routes.get("/schemas/ids/{id}/versions")
async def schema_versions_by_id(request: web.Request) -> web.Response:
    versions = _store(request).index.versions_of_id(
        _schema_id(request.match_info["id"]), include_deleted=_flag(request, "deleted")
    )
    subject = request.query.get("subject")
    pairs = [{"subject": v.subject, "version": v.version} for v in versions if subject in (None, v.subject)]
    return reply(_paginate(pairs, request))


@routes.get("/schemas/ids/{id}/subjects")
async def schema_subjects_by_id(request: web.Request) -> web.Response:
    versions = _store(request).index.versions_of_id(
        _schema_id(request.match_info["id"]), include_deleted=_flag(request, "deleted")
    )
    subject = request.query.get("subject")
    subjects = sorted({v.subject for v in versions if subject in (None, v.subject)})
    return reply(_paginate(subjects, request))


@routes.get("/subjects")
async def list_subjects(request: web.Request) -> web.Response:
    subjects = _store(request).index.subjects(
        include_deleted=_flag(request, "deleted"), deleted_only=_flag(request, "deleted_only")
    )
    prefix = request.query.get("subjectPrefix")
    if prefix:
        subjects = [s for s in subjects if s.startswith(prefix)]
    return reply(_paginate(subjects, request))


@routes.post("/subjects/{subject}")
async def lookup_schema(request: web.Request) -> web.Response:
    schema = await _schema_from_body(request)
    found = _store(request).lookup(
        request.match_info["subject"], schema, include_deleted=_flag(request, "deleted")
    )
    return reply(_version_body(found))


@routes.delete("/subjects/{subject}")
async def delete_subject(request: web.Request) -> web.Response:
    deleted = await _store(request).delete_subject(
        request.match_info["subject"], permanent=_flag(request, "permanent")
    )
    return reply(deleted)


@routes.get("/subjects/{subject}/versions")
async def list_versions(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    index = _store(request).index
    every = index.versions(subject, include_deleted=True)
    if _flag(request, "deleted_only"):
        versions = [v for v in every if v.deleted]
    else:
        versions = index.versions(subject, include_deleted=_flag(request, "deleted"))
    if not every or not (versions or _flag(request, "deleted_only")):
        raise SubjectNotFoundError(subject)
    return reply(_paginate([v.version for v in versions], request))


@routes.post("/subjects/{subject}/versions")
async def register_schema(request: web.Request) -> web.Response:
    schema = await _schema_from_body(request)
    registration = await _store(request).register(request.match_info["subject"], schema)
    if registration.created:
        request.app[METRICS_KEY].registered.inc()
    return reply({"id": registration.schema_id})


@routes.get("/subjects/{subject}/versions/{version}")
async def get_version(request: web.Request) -> web.Response:
    found = _store(request).index.get(
        request.match_info["subject"],
        _version(request.match_info["version"]),
        include_deleted=_flag(request, "deleted"),
    )
    return reply(_version_body(found))


@routes.get("/subjects/{subject}/versions/{version}/schema")
async def get_version_schema(request: web.Request) -> web.Response:
    found = _store(request).index.get(
        request.match_info["subject"],
        _version(request.match_info["version"]),
        include_deleted=_flag(request, "deleted"),
    )
    return web.Response(text=found.schema, content_type=CONTENT_TYPE)


@routes.get("/subjects/{subject}/versions/{version}/referencedby")
async def referenced_by(request: web.Request) -> web.Response:
    # References are not supported, so nothing can refer to a version.
    _store(request).index.get(request.match_info["subject"], _version(request.match_info["version"]))
    return reply([])


@routes.delete("/subjects/{subject}/versions/{version}")
async def delete_version(request: web.Request) -> web.Response:
    version = await _store(request).delete_version(
        request.match_info["subject"],
        _version(request.match_info["version"]),
        permanent=_flag(request, "permanent"),
    )
    return reply(version)


async def _compatibility_reply(request: web.Request, spec: VersionSpec | None) -> web.Response:
    schema = await _schema_from_body(request)
    subject = request.match_info["subject"]
    store = _store(request)
    found = store.check(subject, schema, spec)
    body: dict[str, Any] = {"is_compatible": not found}
    if _flag(request, "verbose"):
        level = store.index.level(subject).value
        body["messages"] = [f"{i.describe()} (compatibility level {level})" for i in found]
    return reply(body)


@routes.post("/compatibility/subjects/{subject}/versions/{version}")
async def check_against_version(request: web.Request) -> web.Response:
    return await _compatibility_reply(request, _version(request.match_info["version"]))


@routes.post("/compatibility/subjects/{subject}/versions")
async def check_against_subject(request: web.Request) -> web.Response:
    return await _compatibility_reply(request, None)


async def _level_from_body(request: web.Request) -> CompatibilityLevel:
    body = await _body(request)
    return CompatibilityLevel.parse(body.get("compatibility") or body.get("compatibilityLevel"))


@routes.get("/config")
async def get_global_config(request: web.Request) -> web.Response:
    return reply({"compatibilityLevel": _store(request).index.global_level().value})


@routes.put("/config")
async def put_global_config(request: web.Request) -> web.Response:
    level = await _store(request).set_level(None, await _level_from_body(request))
    return reply({"compatibility": level.value})


@routes.delete("/config")
async def delete_global_config(request: web.Request) -> web.Response:
    previous = await _store(request).delete_level(None)
    return reply({"compatibilityLevel": previous.value})


@routes.get("/config/{subject}")
async def get_subject_config(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    index = _store(request).index
    level = index.subject_level(subject)
    if level is None:
        if not _flag(request, "defaultToGlobal"):
            raise SubjectConfigNotFoundError(subject)
        level = index.global_level()
    return reply({"compatibilityLevel": level.value})


@routes.put("/config/{subject}")
async def put_subject_config(request: web.Request) -> web.Response:
    level = await _store(request).set_level(request.match_info["subject"], await _level_from_body(request))
    return reply({"compatibility": level.value})


@routes.delete("/config/{subject}")
async def delete_subject_config(request: web.Request) -> web.Response:
    previous = await _store(request).delete_level(request.match_info["subject"])
    return reply({"compatibilityLevel": previous.value})


@routes.get("/mode")
async def get_mode(request: web.Request) -> web.Response:
    # Only READWRITE exists here: no IMPORT or READONLY modes.
    return reply({"mode": "READWRITE"})


@routes.get("/mode/{subject}")
async def get_subject_mode(request: web.Request) -> web.Response:
    return reply({"mode": "READWRITE"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


# --------------------------------------------------------------------------
# errors and metrics
# --------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as Confluent's ``{"error_code", "message"}`` body; counts every request."""
    started = time.perf_counter()
    route = _route_label(request)
    try:
        response = await handler(request)
    except RegistryError as exc:
        response = reply(exc.to_body(), status=exc.http_status)
    except web.HTTPException as exc:
        # Unknown path (404) or method (405) from the router.
        response = reply({"error_code": exc.status, "message": f"HTTP {exc.status} {exc.reason}"}, exc.status)
    except Exception:
        logger.exception("unexpected error serving %s %s", request.method, route)
        response = reply({"error_code": 500, "message": "Internal Server Error"}, status=500)
    metrics_ = request.app[METRICS_KEY]
    metrics_.requests.labels(route, request.method, str(response.status)).inc()
    metrics_.latency.labels(route).observe(time.perf_counter() - started)
    return response


def _route_label(request: web.Request) -> str:
    """The route template (``/subjects/{subject}/versions``), never a subject name."""
    route = request.match_info.route
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


def create_app(store: SchemaStore) -> web.Application:
    """The registry's aiohttp application over a started :class:`SchemaStore`."""
    app = web.Application(middlewares=[error_middleware])
    app[STORE_KEY] = store
    app[METRICS_KEY] = RegistryMetrics(store)
    app.add_routes(routes)
    return app
