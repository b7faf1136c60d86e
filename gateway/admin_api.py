"""AdminApi: the optimizer's REST surface, for admin keys only.

  GET  /v1/prompts/{name}                    versions, active version, history
  POST /v1/prompts/{name}/versions           {"template", "note"?, "activate"?}
  POST /v1/prompts/{name}/activate           {"version"}
  POST /v1/prompts/{name}/rollback           {"reason"?}
  POST /v1/experiments                       {"prompt", "arms": [{"version", "weight"}], "min_samples"?,
                                              "alpha"?, "auto_promote"?}
  GET  /v1/experiments/{id}                  arms, statistics, decision
  POST /v1/experiments/{id}/stop             {"reason"?}   (the kill switch)
  GET  /v1/quality                           rolling quality and recent alerts (?check=now checks first)
  POST /v1/virtuous-cycle/trigger            {"prompt"?, "category"?, "reason"?}: start an improvement cycle
  GET  /v1/virtuous-cycle/status             cycles, experiments, quality by category, decisions, learning

Bodies are JSON; answers are the optimizer's messages as JSON with their
proto field names; errors are OpenAI error JSON naming the field."""

from __future__ import annotations

import re
from collections.abc import Callable

import grpc
import orjson
from google.protobuf.json_format import MessageToDict
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from gateway.openai_errors import OpenAIError, from_grpc

ADMIN_PREFIXES = ("/v1/prompts/", "/v1/experiments", "/v1/quality", "/v1/virtuous-cycle/")
_PROMPT = re.compile(r"^/v1/prompts/([A-Za-z0-9_-]+)(/versions|/activate|/rollback)?$")
_EXPERIMENT = re.compile(r"^/v1/experiments(?:/(\d+)(/stop)?)?$")


def is_admin_path(path: str) -> bool:
    return path.startswith(ADMIN_PREFIXES)


def _body(raw: bytes) -> dict:
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise OpenAIError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise OpenAIError(400, "Invalid request body: expected a JSON object.")
    return body


def _field(body: dict, name: str, kind: type | tuple, required: bool = False, default=None):
    if name not in body:
        if required:
            raise OpenAIError(
                400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
        return default
    value = body[name]
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise OpenAIError(400, f"Invalid type for '{name}'.", param=name, code="invalid_type")
    if not isinstance(value, kind):
        raise OpenAIError(400, f"Invalid type for '{name}'.", param=name, code="invalid_type")
    return value


def _json(message) -> bytes:
    return orjson.dumps(
        MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    )


class AdminApi:
    def __init__(self, optimizer: optimizer_pb2_grpc.OptimizerServiceStub, metadata: Callable[[], tuple]):
        self._optimizer = optimizer
        self._metadata = metadata

    async def handle(self, method: str, path: str, query: str, raw: bytes) -> bytes:
        """The JSON answer; OpenAIError for anything wrong."""
        rpc, request = None, None
        prompt = _PROMPT.match(path)
        experiment = _EXPERIMENT.match(path)
        if prompt:
            name, action = prompt.groups()
            body = _body(raw) if method == "POST" else {}
            if action is None and method == "GET":
                rpc, request = self._optimizer.ListPromptVersions, optimizer_pb2.ListPromptVersionsRequest(name=name)
            elif action == "/versions" and method == "POST":
                request = optimizer_pb2.CreatePromptVersionRequest(
                    name=name,
                    template=_field(body, "template", str, required=True),
                    note=_field(body, "note", str, default=""),
                    activate=_field(body, "activate", bool, default=False),
                )
                rpc = self._optimizer.CreatePromptVersion
            elif action == "/activate" and method == "POST":
                request = optimizer_pb2.ActivatePromptVersionRequest(
                    name=name, version=_field(body, "version", int, required=True)
                )
                rpc = self._optimizer.ActivatePromptVersion
            elif action == "/rollback" and method == "POST":
                request = optimizer_pb2.RollbackPromptRequest(name=name, reason=_field(body, "reason", str, default=""))
                rpc = self._optimizer.RollbackPrompt
        elif experiment:
            experiment_id, stop = experiment.groups()
            body = _body(raw) if method == "POST" else {}
            if experiment_id is None and method == "POST":
                arms = _field(body, "arms", list, required=True)
                parsed = []
                for n, arm in enumerate(arms):
                    if not isinstance(arm, dict):
                        raise OpenAIError(400, f"Invalid 'arms[{n}]': expected an object.", param=f"arms[{n}]")
                    parsed.append(
                        optimizer_pb2.ExperimentArm(
                            version=_field(arm, "version", int, required=True),
                            weight=float(_field(arm, "weight", (int, float), default=1)),
                        )
                    )
                request = optimizer_pb2.StartExperimentRequest(
                    prompt=_field(body, "prompt", str, required=True),
                    arms=parsed,
                    min_samples=_field(body, "min_samples", int, default=0),
                    alpha=float(_field(body, "alpha", (int, float), default=0)),
                    auto_promote=_field(body, "auto_promote", bool, default=False),
                )
                rpc = self._optimizer.StartExperiment
            elif experiment_id and not stop and method == "GET":
                request = optimizer_pb2.GetExperimentRequest(experiment_id=int(experiment_id))
                rpc = self._optimizer.GetExperiment
            elif experiment_id and stop and method == "POST":
                request = optimizer_pb2.StopExperimentRequest(
                    experiment_id=int(experiment_id), reason=_field(body, "reason", str, default="")
                )
                rpc = self._optimizer.StopExperiment
        elif path == "/v1/virtuous-cycle/trigger" and method == "POST":
            body = _body(raw)
            rpc = self._optimizer.TriggerCycle
            request = optimizer_pb2.TriggerCycleRequest(
                prompt=_field(body, "prompt", str, default=""),
                category=_field(body, "category", str, default=""),
                reason=_field(body, "reason", str, default=""),
            )
        elif path == "/v1/virtuous-cycle/status" and method == "GET":
            rpc, request = self._optimizer.GetCycleStatus, optimizer_pb2.GetCycleStatusRequest()
        elif path == "/v1/quality" and method == "GET":
            request = optimizer_pb2.GetQualityRequest(check_now="check=now" in query)
            rpc = self._optimizer.GetQuality
        if rpc is None:
            raise OpenAIError(404, f"Invalid URL ({method} {path})", code="unknown_url")
        try:
            return _json(await rpc(request, timeout=10.0, metadata=self._metadata()))
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
