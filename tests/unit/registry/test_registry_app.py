"""REST routes over an in-memory record log: paths, bodies and Confluent error codes."""

from __future__ import annotations

import asyncio
import json

from aiohttp.test_utils import TestClient, TestServer

from psmesh.registry.app import CONTENT_TYPE, create_app
from psmesh.registry.store import SchemaStore

from .test_registry_store import MemoryRecordLog

SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}, separators=(",", ":"))
BREAKING = json.dumps(
    {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}]}
)
JSON_CT = {"Content-Type": CONTENT_TYPE}


def scenario(body):
    """Run ``body(client)`` against a fresh app on an in-memory log."""

    async def main():
        store = SchemaStore(MemoryRecordLog())
        await store.start()
        async with TestClient(TestServer(create_app(store))) as client:
            return await body(client)

    return asyncio.run(main())


async def _json(resp):
    return resp.status, json.loads(await resp.text())


def test_register_then_read_back_by_id_subject_and_version():
    async def body(client):
        status, reg = await _json(await client.post("/subjects/s/versions", json={"schema": SCHEMA}))
        assert (status, reg) == (200, {"id": 1})
        resp = await client.get("/schemas/ids/1")
        assert resp.content_type == CONTENT_TYPE
        assert json.loads(await resp.text()) == {"schema": SCHEMA}
        assert await (await client.get("/schemas/ids/1/schema")).text() == SCHEMA
        _, version = await _json(await client.get("/subjects/s/versions/latest"))
        assert version == {"subject": "s", "version": 1, "id": 1, "schema": SCHEMA}
        _, pairs = await _json(await client.get("/schemas/ids/1/versions"))
        assert pairs == [{"subject": "s", "version": 1}]
        _, subjects = await _json(await client.get("/subjects"))
        assert subjects == ["s"]
        _, versions = await _json(await client.get("/subjects/s/versions"))
        assert versions == [1]

    scenario(body)


def test_octet_stream_and_plain_json_requests_are_accepted():
    async def body(client):
        for content_type in ("application/octet-stream", "application/json"):
            resp = await client.post(
                "/subjects/s/versions",
                data=json.dumps({"schema": SCHEMA}).encode(),
                headers={"Content-Type": content_type},
            )
            assert resp.status == 200

    scenario(body)


def test_error_bodies_carry_confluent_codes():
    async def body(client):
        cases = [
            (client.get("/subjects/nope/versions"), 404, 40401),
            (client.get("/subjects/s/versions/7"), 404, 40402),
            (client.get("/schemas/ids/99"), 404, 40403),
            (client.get("/subjects/s/versions/zero"), 422, 42202),
            (client.get("/subjects/s/versions/0"), 422, 42202),
            (client.put("/config", json={"compatibility": "SIDEWAYS"}), 422, 42203),
            (client.post("/subjects/s/versions", json={"schema": "{"}), 422, 42201),
            (client.post("/subjects/s/versions", json={"schema": SCHEMA, "schemaType": "PROTOBUF"}), 422, 42201),
            (
                client.post(
                    "/subjects/s/versions",
                    json={"schema": SCHEMA, "references": [{"name": "x", "subject": "y", "version": 1}]},
                ),
                422,
                42201,
            ),
            (client.post("/subjects/s/versions", json={"schema": BREAKING}), 409, 409),
            (client.get("/config/s"), 404, 40408),
            (client.get("/no/such/path"), 404, 404),
        ]
        await client.post("/subjects/s/versions", json={"schema": SCHEMA})
        for request, http_status, error_code in cases:
            resp = await request
            assert resp.status == http_status, await resp.text()
            assert resp.content_type == CONTENT_TYPE
            payload = json.loads(await resp.text())
            assert payload["error_code"] == error_code
            assert payload["message"]

    scenario(body)


def test_protobuf_refusal_says_why():
    async def body(client):
        _, payload = await _json(
            await client.post("/subjects/s/versions", json={"schema": "syntax", "schemaType": "PROTOBUF"})
        )
        assert "PROTOBUF" in payload["message"] and "AVRO" in payload["message"]

    scenario(body)


def test_empty_references_and_normalize_param_are_tolerated():
    async def body(client):
        resp = await client.post(
            "/subjects/s/versions?normalize=True", json={"schema": SCHEMA, "schemaType": "AVRO", "references": []}
        )
        assert resp.status == 200

    scenario(body)


def test_lookup_returns_subject_id_version_schema():
    async def body(client):
        await client.post("/subjects/s/versions", json={"schema": SCHEMA})
        status, found = await _json(await client.post("/subjects/s?normalize=False&deleted=False", json={"schema": SCHEMA}))
        assert status == 200
        assert found == {"subject": "s", "version": 1, "id": 1, "schema": SCHEMA}

    scenario(body)


def test_config_routes_and_default_to_global():
    async def body(client):
        _, cfg = await _json(await client.get("/config"))
        assert cfg == {"compatibilityLevel": "BACKWARD"}
        _, put = await _json(await client.put("/config/s", json={"compatibility": "full"}))
        assert put == {"compatibility": "FULL"}
        _, cfg = await _json(await client.get("/config/s"))
        assert cfg == {"compatibilityLevel": "FULL"}
        _, cfg = await _json(await client.get("/config/other?defaultToGlobal=true"))
        assert cfg == {"compatibilityLevel": "BACKWARD"}
        _, old = await _json(await client.delete("/config/s"))
        assert old == {"compatibilityLevel": "FULL"}

    scenario(body)


def test_compatibility_check_verbose_lists_messages():
    async def body(client):
        await client.post("/subjects/s/versions", json={"schema": SCHEMA})
        _, ok = await _json(await client.post("/compatibility/subjects/s/versions/latest", json={"schema": SCHEMA}))
        assert ok == {"is_compatible": True}
        _, bad = await _json(
            await client.post("/compatibility/subjects/s/versions?verbose=true", json={"schema": BREAKING})
        )
        assert bad["is_compatible"] is False
        assert any("/fields/1" in m for m in bad["messages"])
        _, fresh = await _json(await client.post("/compatibility/subjects/new/versions", json={"schema": BREAKING}))
        assert fresh == {"is_compatible": True}

    scenario(body)


def test_deleted_param_on_listings():
    async def body(client):
        await client.post("/subjects/s/versions", json={"schema": SCHEMA})
        _, deleted = await _json(await client.delete("/subjects/s"))
        assert deleted == [1]
        assert (await client.get("/subjects/s/versions")).status == 404
        _, subjects = await _json(await client.get("/subjects"))
        assert subjects == []
        _, subjects = await _json(await client.get("/subjects?deleted=true"))
        assert subjects == ["s"]
        _, versions = await _json(await client.get("/subjects/s/versions?deleted=true"))
        assert versions == [1]
        _, version = await _json(await client.get("/subjects/s/versions/1?deleted=true"))
        assert version["id"] == 1
        _, gone = await _json(await client.delete("/subjects/s?permanent=true"))
        assert gone == [1]

    scenario(body)


def test_mode_types_and_metrics():
    async def body(client):
        _, mode = await _json(await client.get("/mode"))
        assert mode == {"mode": "READWRITE"}
        _, types = await _json(await client.get("/schemas/types"))
        assert types == ["AVRO"]
        await client.post("/subjects/s/versions", json={"schema": SCHEMA})
        text = await (await client.get("/metrics")).text()
        assert 'psmesh_registry_requests_total{method="POST",route="/subjects/{subject}/versions",status="200"} 1.0' in text
        assert "psmesh_registry_schemas_registered_total 1.0" in text
        assert "psmesh_registry_schemas 1.0" in text

    scenario(body)


def test_checking_against_latest_of_a_subject_not_registered_yet_is_compatible():
    # Confluent answers true (a pipeline checks a schema before its first registration); a given version number
    # of an unknown subject is still 40401.
    async def body(client):
        status, fresh = await _json(
            await client.post("/compatibility/subjects/new/versions/latest", json={"schema": BREAKING}))
        assert (status, fresh) == (200, {"is_compatible": True})
        status, missing = await _json(
            await client.post("/compatibility/subjects/new/versions/1", json={"schema": BREAKING}))
        assert (status, missing["error_code"]) == (404, 40401)

    scenario(body)


def test_a_field_name_that_is_not_an_avro_name_or_a_non_finite_default_is_an_invalid_schema():
    # Java's parser (Confluent's registry, Java clients) refuses them; a schema it cannot read must not get an id.
    def record(field: str, default: str = "") -> str:
        return '{"type":"record","name":"R","fields":[{"name":"%s","type":"double"%s}]}' % (field, default)

    async def body(client):
        for schema in (record("a-b"), record("1a"), record("a.b"), record("x", ',"default":NaN'),
                       record("x", ',"default":1e400')):
            status, error = await _json(await client.post("/subjects/s/versions", json={"schema": schema}))
            assert (status, error["error_code"]) == (422, 42201), schema
        status, _ = await _json(await client.post("/subjects/s/versions", json={"schema": record("_ok_1")}))
        assert status == 200

    scenario(body)
