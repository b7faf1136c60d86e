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
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from gateway.json_body import INT32_MAX, INT64_MAX, check_integer, check_number, check_string, field, json_object
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.plain_json import plain_dict

ADMIN_PREFIXES = ("/v1/prompts/", "/v1/experiments", "/v1/quality", "/v1/virtuous-cycle/")
_PROMPT = re.compile(r"^/v1/prompts/([A-Za-z0-9_-]{1,64})(/versions|/activate|/rollback)?$")
_EXPERIMENT = re.compile(r"^/v1/experiments(?:/(\d+)(/stop)?)?$")


def is_admin_path(path: str) -> bool:
    return path.startswith(ADMIN_PREFIXES)


MAX_NAME_CHARS = 64
MAX_NOTE_CHARS = 4000
MAX_TEMPLATE_CHARS = 100_000


def _body(raw: bytes) -> dict:
    return json_object(raw) if raw else {}


def _int32(body: dict, name: str, *, lo: int = 0, required: bool = False, default: int = 0, param: str = "") -> int:
    value = field(body, name, int, required=required, default=default, param=param)
    return check_integer(param or name, value, lo, INT32_MAX)


def _text(body: dict, name: str, max_chars: int, *, required: bool = False) -> str:
    return check_string(name, field(body, name, str, required=required, default=""), max_chars)


def _path_id(text: str) -> int:
    # Digits only (the path pattern), but as many as a client likes.
    if len(text) > len(str(INT64_MAX)) or int(text) > INT64_MAX:
        raise OpenAIError(
            400,
            f"Invalid 'experiment_id': expected an integer up to {INT64_MAX}.",
            param="experiment_id",
            code="integer_above_max_value",
        )
    return int(text)


def _json(message) -> bytes:
    return orjson.dumps(plain_dict(message))


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
                    template=_text(body, "template", MAX_TEMPLATE_CHARS, required=True),
                    note=_text(body, "note", MAX_NOTE_CHARS),
                    activate=field(body, "activate", bool, default=False),
                )
                rpc = self._optimizer.CreatePromptVersion
            elif action == "/activate" and method == "POST":
                request = optimizer_pb2.ActivatePromptVersionRequest(
                    name=name, version=_int32(body, "version", lo=1, required=True)
                )
                rpc = self._optimizer.ActivatePromptVersion
            elif action == "/rollback" and method == "POST":
                request = optimizer_pb2.RollbackPromptRequest(name=name, reason=_text(body, "reason", MAX_NOTE_CHARS))
                rpc = self._optimizer.RollbackPrompt
        elif experiment:
            experiment_id, stop = experiment.groups()
            body = _body(raw) if method == "POST" else {}
            if experiment_id is None and method == "POST":
                arms = field(body, "arms", list, required=True)
                parsed = []
                for n, arm in enumerate(arms):
                    if not isinstance(arm, dict):
                        raise OpenAIError(400, f"Invalid 'arms[{n}]': expected an object.", param=f"arms[{n}]")
                    parsed.append(
                        optimizer_pb2.ExperimentArm(
                            version=_int32(arm, "version", lo=1, required=True, param=f"arms[{n}].version"),
                            weight=check_number(
                                f"arms[{n}].weight",
                                field(arm, "weight", (int, float), default=1, param=f"arms[{n}].weight"),
                                0,
                                1e6,
                            ),
                        )
                    )
                request = optimizer_pb2.StartExperimentRequest(
                    prompt=_text(body, "prompt", MAX_NAME_CHARS, required=True),
                    arms=parsed,
                    min_samples=_int32(body, "min_samples"),
                    alpha=check_number("alpha", field(body, "alpha", (int, float), default=0), 0, 1),
                    auto_promote=field(body, "auto_promote", bool, default=False),
                )
                rpc = self._optimizer.StartExperiment
            elif experiment_id and not stop and method == "GET":
                request = optimizer_pb2.GetExperimentRequest(experiment_id=_path_id(experiment_id))
                rpc = self._optimizer.GetExperiment
            elif experiment_id and stop and method == "POST":
                request = optimizer_pb2.StopExperimentRequest(
                    experiment_id=_path_id(experiment_id), reason=_text(body, "reason", MAX_NOTE_CHARS)
                )
                rpc = self._optimizer.StopExperiment
        elif path == "/v1/virtuous-cycle/trigger" and method == "POST":
            body = _body(raw)
            rpc = self._optimizer.TriggerCycle
            request = optimizer_pb2.TriggerCycleRequest(
                prompt=_text(body, "prompt", MAX_NAME_CHARS),
                category=_text(body, "category", MAX_NAME_CHARS),
                reason=_text(body, "reason", MAX_NOTE_CHARS),
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
