"""The OpenAPI 3.1 document of the REST surface, served at `GET /openapi.json`:
every endpoint with its parameters, its body, its answers, its errors (in
OpenAI's error shape) and who may call it (the API key scope it needs).
A test keeps it equal to the gateway's route table."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import orjson
from google.protobuf.message import Message
from tilores_x.v1 import audit_pb2, optimizer_pb2, router_pb2

from gateway.exchange import Exchange
from gateway.plain_json import plain_schemas, schema_ref
from gateway.routes import PUBLIC, Route
from services.runtime.agent_modes import MODE_BY_AGENT_TYPE, MODE_CATEGORIES

VERSION = "1.0.0"

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"type": ["string", "array", "null"]},
        "name": {"type": "string"},
        "tool_call_id": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
    },
}
SAMPLING = {
    "model": {"type": "string", "maxLength": 256, "examples": ["offline"]},
    "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
    "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "max_tokens": {"type": ["integer", "null"], "minimum": 1},
    "stop": {"type": ["string", "array", "null"], "items": {"type": "string"}},
    "seed": {"type": ["integer", "null"]},
    "stream": {"type": "boolean"},
    "stream_options": {"type": ["object", "null"], "properties": {"include_usage": {"type": "boolean"}}},
    "user": {"type": "string", "maxLength": 256},
}
CHAT = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        **SAMPLING,
        "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
        "n": {"type": ["integer", "null"], "const": 1},
        "response_format": {"type": ["object", "null"]},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"type": ["string", "object"]},
        "parallel_tool_calls": {"type": "boolean"},
        "no_fallback": {"type": "boolean", "description": "Answer from the requested model only."},
        "agent_type": {
            "type": "string",
            "enum": sorted(MODE_BY_AGENT_TYPE),
            "description": "The conversation's mode: zoho_cs_agent (a call-centre agent, the default) or "
            "client_chat_agent (the customer themselves); a slash command in the messages does the same.",
        },
        "category": {"type": "string", "enum": list(MODE_CATEGORIES), "description": "The mode's category."},
        "prompt_id": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_-]{1,64}$",
            "description": "Answer with this named prompt instead of the mode's.",
        },
        "prompt_version": {"type": "integer", "minimum": 1, "description": "Answer with this version of the prompt."},
    },
}
COMPLETION = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        **SAMPLING,
        "prompt": {"type": ["string", "array"], "items": {"type": "string"}, "maxItems": 16},
        "n": {"type": ["integer", "null"], "const": 1},
        "best_of": {"type": ["integer", "null"], "const": 1},
        "echo": {"type": "boolean"},
    },
}
OBJECT = {"type": "object"}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


STRING = {"type": "string"}
INT = {"type": "integer", "minimum": 0, "maximum": 2_147_483_647}
REASON = _object([], reason={"type": "string", "maxLength": 4000})
# (method, template) -> (summary, request body or None, success status, success media type)
OPERATIONS: dict[tuple[str, str], tuple[str, dict[str, Any] | None, int, str]] = {
    ("POST", "/v1/chat/completions"): ("A chat completion, streamed (SSE) or whole", _body(CHAT), 200, "json+sse"),
    ("POST", "/v1/chat/batch"): (
        "Many chat completions at once, answered in parallel",
        _body(
            _object(
                ["requests"],
                requests={
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100,
                    "items": _object(["custom_id", "body"], custom_id={"type": "string", "maxLength": 256}, body=CHAT),
                },
                concurrency={"type": "integer", "minimum": 1, "maximum": 16},
            )
        ),
        200,
        "json",
    ),
    ("POST", "/v1/completions"): ("A legacy text completion, streamed or whole", _body(COMPLETION), 200, "json+sse"),
    ("GET", "/v1/credit-report/{identifier}"): ("One customer's credit report by an identifier", None, 200, "json"),
    ("POST", "/v1/credit-comparison"): (
        "Several customers' credit profiles side by side",
        _body(_object(["customers"], customers={"type": "array", "minItems": 2, "maxItems": 10, "items": STRING})),
        200,
        "json",
    ),
    ("GET", "/v1/field-discovery/{category}"): ("Customer-data fields of a category", None, 200, "json"),
    ("POST", "/v1/feedback"): (
        "A user's verdict on an answer",
        _body(
            _object(
                ["completion_id", "rating"],
                completion_id=STRING,
                rating={"type": "string", "enum": ["up", "down"]},
                comment={"type": "string", "maxLength": 4000},
            )
        ),
        200,
        "json",
    ),
    ("POST", "/v1/embeddings"): (
        "Vectors of texts or token ids from an embedding model",
        _body(
            _object(
                ["model", "input"],
                model={"type": "string", "maxLength": 256, "examples": ["offline-embedding"]},
                input={"type": ["string", "array"]},
                encoding_format={"type": "string", "enum": ["float", "base64"]},
                dimensions={"type": "integer", "minimum": 1},
                user={"type": "string", "maxLength": 256},
            )
        ),
        200,
        "json",
    ),
    ("GET", "/v1/models"): ("The model catalog", None, 200, "json"),
    ("GET", "/v1/models/{model}"): ("One catalog model", None, 200, "json"),
    ("GET", "/v1/access-log"): ("Who looked at which customer, newest first, a page at a time", None, 200, "json"),
    ("POST", "/v1/customer-names"): (
        "The names of customers by entity id (each look is on the access log)",
        _body(_object(["entity_ids"], entity_ids={"type": "array", "maxItems": 100, "items": STRING})),
        200,
        "json",
    ),
    ("GET", "/v1/prompts"): ("Every prompt with its active version", None, 200, "json"),
    ("GET", "/v1/prompts/{name}"): ("A prompt's versions, active version and history", None, 200, "json"),
    ("POST", "/v1/prompts/{name}/versions"): (
        "A new version of a prompt",
        _body(
            _object(
                ["template"],
                template={"type": "string", "maxLength": 100_000},
                note={"type": "string", "maxLength": 4000},
                activate={"type": "boolean"},
            )
        ),
        200,
        "json",
    ),
    ("POST", "/v1/prompts/{name}/activate"): (
        "Activate a version",
        _body(_object(["version"], version={"type": "integer", "minimum": 1})),
        200,
        "json",
    ),
    ("POST", "/v1/prompts/{name}/rollback"): ("Roll back to the previous version", _body(REASON, False), 200, "json"),
    ("GET", "/v1/experiments"): ("Experiments, running first, then the newest", None, 200, "json"),
    ("POST", "/v1/experiments"): (
        "Start an experiment between versions of a prompt",
        _body(
            _object(
                ["prompt", "arms"],
                prompt=STRING,
                arms={
                    "type": "array",
                    "items": _object(["version"], version={"type": "integer", "minimum": 1}, weight={"type": "number"}),
                },
                min_samples=INT,
                alpha={"type": "number", "minimum": 0, "maximum": 1},
                auto_promote={"type": "boolean"},
            )
        ),
        200,
        "json",
    ),
    ("GET", "/v1/experiments/{experiment_id}"): ("An experiment's arms, statistics and decision", None, 200, "json"),
    ("POST", "/v1/experiments/{experiment_id}/stop"): ("Stop an experiment", _body(REASON, False), 200, "json"),
    ("GET", "/v1/quality"): ("Rolling quality, alerts and judge agreement", None, 200, "json"),
    ("GET", "/v1/quality/history"): ("Each group's rolling quality over time, with its levels", None, 200, "json"),
    ("POST", "/v1/virtuous-cycle/trigger"): (
        "Start an improvement cycle",
        _body(_object([], prompt=STRING, category=STRING, reason=STRING), False),
        200,
        "json",
    ),
    ("GET", "/v1/virtuous-cycle/status"): ("Cycles, experiments, quality by category, learning", None, 200, "json"),
    ("POST", "/v1/evaluations"): (
        "Start an evaluation run",
        _body(
            _object(
                ["models", "customers"],
                models={"type": "array", "minItems": 1, "maxItems": 16, "items": STRING},
                customers={"type": "array", "minItems": 1, "maxItems": 500, "items": STRING},
                questions={"type": "integer", "minimum": 0, "maximum": 2000},
                seed={"type": "integer", "minimum": 0},
                prompt_version=INT,
                note={"type": "string", "maxLength": 4000},
            )
        ),
        202,
        "json",
    ),
    ("GET", "/v1/evaluations"): ("Evaluation runs, newest first", None, 200, "json"),
    ("GET", "/v1/evaluations/{run_id}"): ("An evaluation run: progress, matrix and report", None, 200, "json"),
    ("GET", "/v1/evaluations/{run_id}/report.html"): ("An evaluation's report as HTML", None, 200, "html"),
    ("POST", "/v1/clear-cache"): (
        "Remove a tenant's cached values",
        _body(_object(["tenant"], tenant=STRING, namespace=STRING)),
        200,
        "json",
    ),
    ("GET", "/health"): ("Whether the mesh answers, with its peers and breakers", None, 200, "json"),
    ("GET", "/health/ready"): (
        "Whether this gateway replica holds a working connection to a router (readiness)",
        None,
        200,
        "json",
    ),
    ("GET", "/health/live"): ("Whether the gateway process is up", None, 200, "json"),
    ("GET", "/health/detailed"): ("Every service and dependency (the gateway's own port)", None, 200, "json"),
    ("GET", "/metrics"): ("Prometheus metrics (the gateway's own port)", None, 200, "text"),
    ("GET", "/openapi.json"): ("This document", None, 200, "json"),
    ("GET", "/console"): (
        "The operations console (a page; its data comes from /v1/ with an admin key)",
        None,
        200,
        "html",
    ),
    ("GET", "/console/{asset}"): ("A script, style sheet or library of the console", None, 200, "asset"),
    ("GET", "/v1/console/session"): ("Who the key is and which console pages it may open", None, 200, "json"),
    ("GET", "/v1/console/mesh"): ("Every service and dependency, as /health/detailed sees them", None, 200, "json"),
}
PATH_PARAMETERS = {
    "identifier": "An e-mail, client id, phone number or Salesforce contact id (URL-encoded)",
    "category": "identity, contact, status, billing, card, calls, tickets, credit, other or all",
    "model": "A catalog model id",
    "name": "A prompt name, e.g. customer",
    "experiment_id": "An experiment id",
    "run_id": "An evaluation run id, eval-…",
    "asset": "A file of the console, e.g. console.js or vendor/uPlot.iife.min.js",
}
QUERY_PARAMETERS = {
    ("GET", "/v1/access-log"): (
        "customer",
        "entity_id",
        "who",
        "completion_id",
        "since",
        "until",
        "limit",
        "cursor",
    ),
    ("GET", "/v1/quality"): ("check",),
    ("GET", "/v1/quality/history"): ("group", "hours", "points"),
    ("GET", "/v1/experiments"): ("prompt", "limit"),
    ("GET", "/v1/evaluations"): ("limit",),
}
# The answers the gateway writes with plain_dict, by their messages: their
# schemas come from the protos, so the document cannot drift from them.
_o = optimizer_pb2
PLAIN_ANSWERS: dict[tuple[str, str], type[Message]] = {
    ("GET", "/v1/prompts"): _o.ListPromptsResponse,
    ("GET", "/v1/prompts/{name}"): _o.ListPromptVersionsResponse,
    ("POST", "/v1/prompts/{name}/versions"): _o.CreatePromptVersionResponse,
    ("POST", "/v1/prompts/{name}/activate"): _o.ActivatePromptVersionResponse,
    ("POST", "/v1/prompts/{name}/rollback"): _o.RollbackPromptResponse,
    ("GET", "/v1/experiments"): _o.ListExperimentsResponse,
    ("POST", "/v1/experiments"): _o.StartExperimentResponse,
    ("GET", "/v1/experiments/{experiment_id}"): _o.GetExperimentResponse,
    ("POST", "/v1/experiments/{experiment_id}/stop"): _o.StopExperimentResponse,
    ("GET", "/v1/quality"): _o.GetQualityResponse,
    ("GET", "/v1/quality/history"): _o.GetQualityHistoryResponse,
    ("POST", "/v1/virtuous-cycle/trigger"): _o.TriggerCycleResponse,
    ("GET", "/v1/virtuous-cycle/status"): _o.GetCycleStatusResponse,
    ("POST", "/v1/evaluations"): _o.StartEvaluationResponse,
    ("GET", "/v1/evaluations"): _o.ListEvaluationsResponse,
}
# Answers that hold plain messages inside an object of the gateway's own.
WRAPPED_ANSWERS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/v1/evaluations/{run_id}"): _object(
        ["run", "report"],
        run=schema_ref(_o.EvaluationRun),
        report={"type": ["object", "null"], "description": "The run's report once it has finished"},
    ),
    ("GET", "/v1/access-log"): _object(
        ["object", "data", "truncated", "next_cursor", "customers"],
        object={"const": "list"},
        data={"type": "array", "items": schema_ref(audit_pb2.AccessRecord)},
        truncated={"type": "boolean"},
        next_cursor={"type": ["string", "null"], "description": "Pass as `cursor` for the next (older) page"},
        customers={
            "anyOf": [{"type": "array", "items": schema_ref(router_pb2.NamedCustomer)}, {"type": "null"}],
            "description": "Whom `customer` named, when given",
        },
    ),
    ("POST", "/v1/customer-names"): _object(
        ["object", "data"],
        object={"const": "list"},
        data={"type": "array", "items": schema_ref(router_pb2.NamedCustomer)},
    ),
}
MEDIA = {
    "json": {"application/json": {"schema": OBJECT}},
    "json+sse": {"application/json": {"schema": OBJECT}, "text/event-stream": {"schema": STRING}},
    "html": {"text/html": {"schema": STRING}},
    "asset": {"text/javascript": {"schema": STRING}, "text/css": {"schema": STRING}},
    "text": {"text/plain": {"schema": STRING}},
}


def _operation(route: Route) -> dict[str, Any]:
    summary, body, status, media = OPERATIONS[(route.method, route.template)]
    errors = {"description": "An error in OpenAI's shape", "content": {"application/json": {"schema": ERROR}}}
    content = MEDIA[media]
    answer = _answer_schema((route.method, route.template))
    if answer is not None:
        content = {"application/json": {"schema": answer}}
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": _operation_id(route),
        "responses": {str(status): {"description": "Success", "content": content}},
    }
    if route.access == PUBLIC:
        operation["security"] = []
    else:
        operation["security"] = [{"apiKey": []}]
        operation["x-key-scope"] = route.access
        if route.agents_only:
            operation["x-key-audience"] = "agent"  # a customer-facing key (audience client) gets 403
        operation["responses"] |= {"401": errors, "403": errors, "429": errors}
    if body is not None or "{" in route.template or QUERY_PARAMETERS.get((route.method, route.template)):
        operation["responses"] |= {"400": errors, "404": errors}
    if route.access != PUBLIC:
        operation["responses"] |= {"503": errors}
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMETERS[name],
            "schema": {"type": "string", **({"pattern": f"^{route.params[name]}$"} if name in route.params else {})},
        }
        for name in _path_names(route.template)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": STRING}
        for name in QUERY_PARAMETERS.get((route.method, route.template), ())
    ]
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    return operation


def _answer_schema(operation: tuple[str, str]) -> dict[str, Any] | None:
    if operation in PLAIN_ANSWERS:
        return schema_ref(PLAIN_ANSWERS[operation])
    return WRAPPED_ANSWERS.get(operation)


def _answer_schemas() -> dict[str, dict[str, Any]]:
    """Every message schema the answers refer to."""
    held = [audit_pb2.AccessRecord, optimizer_pb2.EvaluationRun, router_pb2.NamedCustomer]
    return plain_schemas(*PLAIN_ANSWERS.values(), *held)


_NOT_A_WORD = re.compile(r"[^a-z0-9]+")


def _operation_id(route: Route) -> str:
    """`post_v1_chat_completions`, `get_v1_models_model`."""
    words = _NOT_A_WORD.sub("_", route.template.lower()).strip("_")
    return f"{route.method.lower()}_{words}"


def _path_names(template: str) -> list[str]:
    return [part[1:-1] for part in template.split("/") if part.startswith("{")]


def document(routes: list[Route]) -> dict[str, Any]:
    """The document for these routes (every route must be described)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tilores X Mesh",
            "version": VERSION,
            "description": "A customer-data assistant behind an OpenAI-compatible API. Errors are OpenAI error "
            "JSON; `x-key-scope` names the API key scope an operation needs (admin operations need an admin key).",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, **_answer_schemas()},
        },
        "paths": paths,
    }


class OpenApiRoute:
    def __init__(self, routes: list[Route]):
        self._routes = routes

    def routes(self) -> list[Route]:
        return [Route("GET", "/openapi.json", self.serve, PUBLIC)]

    @cache  # noqa: B019 - one document per gateway process
    def _bytes(self) -> bytes:
        return orjson.dumps(document([*self._routes, *self.routes()]))

    async def serve(self, exchange: Exchange) -> None:
        await exchange.json(200, self._bytes())
