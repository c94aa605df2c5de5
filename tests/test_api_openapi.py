"""The OpenAPI document says what this deployment does: every route and every status it can
answer, one body per task type with that task's payload model, links between operations."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from api_fixtures import ApiFactory
from pydantic import BaseModel, ConfigDict, Field

from jobq.tasks import Registry, Task, load_registry

pytestmark = pytest.mark.any_server


def schema_of(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["components"]["schemas"][ref.rpartition("/")[2]]
    return found


async def test_openapi_documents_every_route(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    paths = doc["paths"]
    assert set(paths) == {"/jobs", "/jobs/{job_id}/status", "/jobs/{job_id}", "/queues", "/dlq",
                          "/dlq/{dlq_id}", "/dlq/{dlq_id}/replay", "/healthz", "/readyz",
                          "/metrics", "/queues/{queue}/pause", "/queues/{queue}/resume",
                          "/queues/{queue}/jobs", "/queues/{queue}/throughput",
                          "/jobs/{job_id}/cancel", "/dlq/replay", "/workers", "/jobs/batch",
                          "/jobs/{job_id}/events", "/workflows", "/workflows/{workflow_id}",
                          "/workflows/{workflow_id}/cancel", "/workflows/{workflow_id}/nodes",
                          "/workflows/{workflow_id}/graph", "/workflows/{workflow_id}/results",
                          "/workflows/{workflow_id}/events", "/workflows/{workflow_id}/retry"}
    statuses = {(path, method): set(operation["responses"])
                for path, operations in paths.items() for method, operation in operations.items()}
    core = {
        ("/jobs", "post"): {"200", "202", "401", "403", "409", "413", "415", "422", "503"},
        ("/jobs/batch", "post"): {"200", "401", "403", "413", "415", "422", "503"},
        ("/jobs/{job_id}/status", "get"): {"200", "401", "404", "410", "422", "503"},
        ("/jobs/{job_id}", "get"): {"200", "401", "404", "410", "503"},
        ("/queues", "get"): {"200", "401", "503"},
        ("/dlq", "get"): {"200", "401", "422", "503"},
        ("/dlq/{dlq_id}", "get"): {"200", "401", "404", "503"},
        ("/dlq/{dlq_id}/replay", "post"): {"202", "401", "403", "404", "409", "413", "415",
                                           "422", "503"},
        ("/healthz", "get"): {"200"},
        ("/readyz", "get"): {"200", "503"},
        ("/metrics", "get"): {"200", "401"},
        ("/workflows", "post"): {"200", "202", "401", "403", "409", "413", "415", "422", "503"},
        ("/workflows/{workflow_id}", "get"): {"200", "401", "404", "422", "503"},
        ("/workflows/{workflow_id}/cancel", "post"): {"200", "401", "403", "404", "503"},
        ("/workflows", "get"): {"200", "401", "422", "503"},
        ("/workflows/{workflow_id}/nodes", "get"): {"200", "401", "404", "422", "503"},
        ("/workflows/{workflow_id}/graph", "get"): {"200", "401", "404", "503"},
        ("/workflows/{workflow_id}/results", "get"): {"200", "401", "404", "422", "503"},
        ("/workflows/{workflow_id}/events", "get"): {"200", "401", "404", "503"},
        ("/workflows/{workflow_id}/retry", "post"): {"200", "401", "403", "404", "409", "415",
                                                     "422", "503"},
    }
    assert {key: statuses[key] for key in core} == core
    for (path, method), codes in statuses.items():
        for code in {c for c in codes if not c.startswith("2")}:
            answer = paths[path][method]["responses"][code]
            ref = answer["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorBody"), (path, code)
    assert "Retry-After" in paths["/jobs"]["post"]["responses"]["503"]["headers"]
    assert "HTTPValidationError" not in json.dumps(doc)
    for operations in paths.values():
        for operation in operations.values():
            assert operation["description"], operation["operationId"]

    replay = paths["/dlq/{dlq_id}/replay"]["post"]["requestBody"]
    assert replay["required"] is False
    assert schema_of(doc, replay["content"]["application/json"]["schema"]["$ref"])[
        "properties"]["idempotencyKey"]
    queue = next(p for p in paths["/dlq"]["get"]["parameters"] if p["name"] == "queue")
    assert queue["schema"] == {"type": "string",
                               "enum": ["bench-queue", "cleanup-queue", "email-queue",
                                        "report-queue"]}


async def test_every_state_change_documents_the_cross_site_403_it_answers(
    api: httpx.AsyncClient,
) -> None:
    """Each POST/PUT/PATCH/DELETE operation lists 403 with ErrorBody, and a cross-site request
    to it does get exactly that 403; no read operation lists it."""
    doc = (await api.get("/openapi.json")).json()
    changes = [(path, method) for path, operations in doc["paths"].items()
               for method in operations if method.upper() not in ("GET", "HEAD", "OPTIONS")]
    assert ("/jobs", "post") in changes and ("/dlq/{dlq_id}", "delete") in changes
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert ("403" in operation["responses"]) == ((path, method) in changes), (path, method)
    for path, method in changes:
        concrete = path.replace("{job_id}", "j1").replace("{dlq_id}", "d1").replace(
            "{queue}", "report-queue")
        answer = await api.request(method.upper(), concrete, json={},
                                   headers={"Origin": "https://evil.example"})
        assert answer.status_code == 403, (path, method, answer.text)
        assert answer.json()["error"]["code"] == "cross_site_request"
        documented = doc["paths"][path][method]["responses"]["403"]
        assert documented["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


async def test_links_lead_from_answers_to_the_operations_taking_their_ids(
    api: httpx.AsyncClient,
) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    listed = paths["/dlq"]["get"]["responses"]["200"]["links"]
    assert listed["GetDlqEntry"] == {"operationId": "get_dlq_entry",
                                     "parameters": {"dlq_id": "$response.body#/items/0/dlqId"}}
    assert listed["ReplayDlqEntry"]["operationId"] == "replay_dlq_entry"
    entry = paths["/dlq/{dlq_id}"]["get"]["responses"]["200"]["links"]
    assert entry["ReplayDlqEntry"]["parameters"] == {"dlq_id": "$response.body#/dlqId"}
    replayed = paths["/dlq/{dlq_id}/replay"]["post"]["responses"]["202"]["links"]
    assert replayed["GetJob"]["parameters"] == {"job_id": "$response.body#/jobId"}
    operation_ids = {op["operationId"] for ops in paths.values() for op in ops.values()}
    for operations in paths.values():
        for operation in operations.values():
            for answer in operation["responses"].values():
                for link in answer.get("links", {}).values():
                    assert link["operationId"] in operation_ids


async def test_each_task_has_its_body_with_its_payload_model(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    """The demo tasks and the test's own (tests/testtasks.py) alike: the registry decides."""
    doc = (await api.get("/openapi.json")).json()
    body = doc["paths"]["/jobs"]["post"]["requestBody"]
    assert body["required"] is True
    union = schema_of(doc, body["content"]["application/json"]["schema"]["$ref"])
    assert union["discriminator"]["propertyName"] == "type"
    mapping = union["discriminator"]["mapping"]
    assert set(mapping) == {task.name for task in registry}
    assert sorted(m["$ref"] for m in union["oneOf"]) == sorted(mapping.values())
    for task in registry:
        member = schema_of(doc, mapping[task.name])
        assert member["properties"]["type"]["const"] == task.name
        assert set(member["required"]) == {"type", "idempotencyKey", "payload"}
        assert member["additionalProperties"] is False
        assert f"`{task.name}`" in member["description"]
        payload = schema_of(doc, member["properties"]["payload"]["$ref"])
        assert payload == task.payload.model_json_schema(
            ref_template="#/components/schemas/{model}")
        assert member["properties"]["options"]["anyOf"][0]["$ref"].endswith("/JobOptions")

    welcome = schema_of(doc, mapping["welcome-email"])
    assert welcome["title"] == "WelcomeEmailJob"
    assert "appending it to the outbox file" in welcome["description"]  # the handler's docstring
    assert schema_of(doc, welcome["properties"]["payload"]["$ref"])["required"] == [
        "email", "name"]
    sleep = schema_of(doc, mapping["sleep"])  # a user's task, from tests/testtasks.py
    assert sleep["properties"]["payload"]["$ref"] == "#/components/schemas/Sleep"

    html = await api.get("/docs")
    assert html.status_code == 200 and "swagger-ui" in html.text


class Backoff(BaseModel):
    """A user's payload model that shares its name with a schema the API's bodies use."""

    model_config = ConfigDict(extra="forbid")
    retries: int = Field(ge=0)


class JobStatus(BaseModel):
    """A user's payload model that shares its name with one of the API's answers."""

    model_config = ConfigDict(extra="forbid")
    ticket: str


async def _noop(ctx: object, payload: BaseModel) -> None:
    """Does nothing."""


async def test_user_models_named_like_api_schemas_keep_both(api_app: ApiFactory) -> None:
    registry = Registry([*load_registry(["jobq.demo"]),
                         Task("retry-budget", "email-queue", Backoff, _noop),
                         Task("ticket-status", "email-queue", JobStatus, _noop)])
    async with api_app(registry) as http:
        doc = (await http.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    mapping = schemas["JobCreate"]["discriminator"]["mapping"]
    for task, field in (("retry-budget", "retries"), ("ticket-status", "ticket")):
        payload_ref = schema_of(doc, mapping[task])["properties"]["payload"]["$ref"]
        assert set(schema_of(doc, payload_ref)["properties"]) == {field}, payload_ref
    # The API's own schemas are untouched, and what refers to them still does.
    assert set(schemas["Backoff"]["properties"]) == {"type", "delaySeconds"}
    assert schemas["JobPublic"]["properties"]["backoff"]["$ref"] == "#/components/schemas/Backoff"
    assert "state" in schemas["JobStatus"]["properties"]
    status = doc["paths"]["/jobs/{job_id}/status"]["get"]["responses"]["200"]
    assert schema_of(doc, status["content"]["application/json"]["schema"]["$ref"]) == schemas[
        "JobStatus"]
    assert "JobStatusPayload" in schemas  # the user's model, renamed
    options = schema_of(doc, mapping["retry-budget"])["properties"]["options"]["anyOf"][0]
    backoff = schema_of(doc, options["$ref"])["properties"]["backoff"]["anyOf"][0]["$ref"]
    assert set(schema_of(doc, backoff)["properties"]) == {"type", "delaySeconds"}


async def test_a_single_task_is_the_body_itself(api_app: ApiFactory) -> None:
    registry = Registry([t for t in load_registry(["jobq.demo"]) if t.name == "flaky"])
    async with api_app(registry) as http:
        doc = (await http.get("/openapi.json")).json()
        accepted = await http.post("/jobs", json={"type": "flaky", "idempotencyKey": "one",
                                                  "payload": {"failTimes": 0}})
    assert accepted.status_code == 202, accepted.text
    union = doc["components"]["schemas"]["JobCreate"]
    assert union["$ref"] == "#/components/schemas/FlakyJob"
    assert schema_of(doc, union["$ref"])["properties"]["type"]["const"] == "flaky"
