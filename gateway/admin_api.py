"""AdminRoutes: the optimizer's REST surface, for admin keys only.

  GET  /v1/prompts                           every prompt with its active version
  GET  /v1/prompts/{name}                    versions, active version, history
  POST /v1/prompts/{name}/versions           {"template", "note"?, "activate"?}
  POST /v1/prompts/{name}/activate           {"version"}
  POST /v1/prompts/{name}/rollback           {"reason"?}
  GET  /v1/experiments                       ?prompt=&limit=: experiments, running first, then the newest
  POST /v1/experiments                       {"prompt", "arms": [{"version", "weight"}], "min_samples"?,
                                              "alpha"?, "auto_promote"?}
  GET  /v1/experiments/{id}                  arms, statistics, decision
  POST /v1/experiments/{id}/stop             {"reason"?}   (the kill switch)
  GET  /v1/quality                           rolling quality and recent alerts (?check=now checks first)
  GET  /v1/quality/history                   ?group=category|model|prompt|mode&hours=&points=120: each key's
                                              rolling quality over time (the last `hours`; none: the range
                                              the data fills), the levels, and the range (since, until)
  POST /v1/virtuous-cycle/trigger            {"prompt"?, "category"?, "reason"?}: start an improvement cycle
  GET  /v1/virtuous-cycle/status             cycles, experiments, quality by category, decisions, learning
  POST /v1/evaluations                       {"models", "customers", "questions"?, "seed"?, "prompt_version"?,
                                              "note"?}: start an evaluation run
  GET  /v1/evaluations                       ?limit=: evaluation runs, newest first (without reports)
  GET  /v1/evaluations/{id}                  progress; when done the matrix and the report (JSON)
  GET  /v1/evaluations/{id}/report.html      the report as a self-contained HTML page with heatmaps

Bodies are JSON; answers are the optimizer's messages as JSON with their
proto field names; errors are OpenAI error JSON naming the field."""

from __future__ import annotations

import time
from typing import Any

import grpc
import orjson
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from gateway.exchange import Exchange
from gateway.json_body import (
    INT32_MAX,
    INT64_MAX,
    check_integer,
    check_number,
    check_string,
    field,
    invalid_type,
    json_object,
)
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.plain_json import plain_dict
from gateway.query_params import number_param, query_params
from gateway.routes import Handler, Route
from services.runtime.limits import MAX_LIST_LIMIT

HISTORY_PARAMS = ("group", "hours", "points")
PATH_PARAMS = {"name": r"[A-Za-z0-9_-]{1,64}", "experiment_id": r"\d+", "run_id": r"eval-[0-9a-f]{1,32}"}
MAX_EVALUATION_MODELS = 16
MAX_EVALUATION_CUSTOMERS = 500
MAX_IDENTIFIER_CHARS = 256


MAX_NAME_CHARS = 64
MAX_NOTE_CHARS = 4000
MAX_TEMPLATE_CHARS = 100_000


async def _body(exchange: Exchange) -> dict[str, Any]:
    raw = await exchange.body()
    return json_object(raw) if raw else {}


def _int32(
    body: dict[str, Any], name: str, *, lo: int = 0, required: bool = False, default: int = 0, param: str = ""
) -> int:
    value = field(body, name, int, required=required, default=default, param=param)
    return check_integer(param or name, value, lo, INT32_MAX)


def _text(body: dict[str, Any], name: str, max_chars: int, *, required: bool = False) -> str:
    return check_string(name, field(body, name, str, required=required, default=""), max_chars)


def _strings(body: dict[str, Any], name: str, max_items: int, max_chars: int) -> list[str]:
    values = field(body, name, list, required=True)
    if not values or len(values) > max_items:
        raise OpenAIError(400, f"Invalid '{name}': expected 1 to {max_items} strings.", param=name)
    for n, value in enumerate(values):
        if not isinstance(value, str):
            raise invalid_type(f"{name}[{n}]", "a string", value)
        check_string(f"{name}[{n}]", value, max_chars)
    return list(values)


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


def _limit(query: dict[str, str]) -> int:
    """`limit`: 1 to MAX_LIST_LIMIT items; absent: the default."""
    text = query.get("limit", "")
    if not text:
        return 0
    if not text.isdigit() or len(text) > 6:
        raise OpenAIError(400, "Invalid 'limit': expected an integer.", param="limit", code="invalid_type")
    return check_integer("limit", int(text), 1, MAX_LIST_LIMIT)


def _json(message: Any) -> bytes:
    return orjson.dumps(plain_dict(message))


class AdminRoutes:
    def __init__(self, optimizer: optimizer_pb2_grpc.OptimizerServiceStub):
        self._optimizer = optimizer

    def routes(self) -> list[Route]:
        def admin(method: str, template: str, handler: Handler) -> Route:
            return Route(method, template, handler, "admin", PATH_PARAMS)

        return [
            admin("GET", "/v1/prompts", self.list_prompts),
            admin("GET", "/v1/prompts/{name}", self.list_versions),
            admin("POST", "/v1/prompts/{name}/versions", self.create_version),
            admin("POST", "/v1/prompts/{name}/activate", self.activate),
            admin("POST", "/v1/prompts/{name}/rollback", self.rollback),
            admin("GET", "/v1/experiments", self.list_experiments),
            admin("POST", "/v1/experiments", self.start_experiment),
            admin("GET", "/v1/experiments/{experiment_id}", self.experiment),
            admin("POST", "/v1/experiments/{experiment_id}/stop", self.stop_experiment),
            admin("GET", "/v1/quality", self.quality),
            admin("GET", "/v1/quality/history", self.quality_history),
            admin("POST", "/v1/virtuous-cycle/trigger", self.trigger_cycle),
            admin("GET", "/v1/virtuous-cycle/status", self.cycle_status),
            admin("GET", "/v1/evaluations", self.list_evaluations),
            admin("POST", "/v1/evaluations", self.start_evaluation),
            admin("GET", "/v1/evaluations/{run_id}", self.evaluation),
            admin("GET", "/v1/evaluations/{run_id}/report.html", self.evaluation_report),
        ]

    @staticmethod
    async def _call(exchange: Exchange, rpc: Any, request: Any) -> None:
        try:
            reply = await rpc(request, timeout=10.0)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        await exchange.json(200, _json(reply))

    async def list_prompts(self, exchange: Exchange) -> None:
        await self._call(exchange, self._optimizer.ListPrompts, optimizer_pb2.ListPromptsRequest())

    async def list_versions(self, exchange: Exchange, name: str) -> None:
        await self._call(
            exchange, self._optimizer.ListPromptVersions, optimizer_pb2.ListPromptVersionsRequest(name=name)
        )

    async def create_version(self, exchange: Exchange, name: str) -> None:
        body = await _body(exchange)
        request = optimizer_pb2.CreatePromptVersionRequest(
            name=name,
            template=_text(body, "template", MAX_TEMPLATE_CHARS, required=True),
            note=_text(body, "note", MAX_NOTE_CHARS),
            activate=field(body, "activate", bool, default=False),
        )
        await self._call(exchange, self._optimizer.CreatePromptVersion, request)

    async def activate(self, exchange: Exchange, name: str) -> None:
        body = await _body(exchange)
        request = optimizer_pb2.ActivatePromptVersionRequest(
            name=name, version=_int32(body, "version", lo=1, required=True)
        )
        await self._call(exchange, self._optimizer.ActivatePromptVersion, request)

    async def rollback(self, exchange: Exchange, name: str) -> None:
        body = await _body(exchange)
        request = optimizer_pb2.RollbackPromptRequest(name=name, reason=_text(body, "reason", MAX_NOTE_CHARS))
        await self._call(exchange, self._optimizer.RollbackPrompt, request)

    async def start_experiment(self, exchange: Exchange) -> None:
        body = await _body(exchange)
        arms = []
        for n, arm in enumerate(field(body, "arms", list, required=True)):
            if not isinstance(arm, dict):
                raise OpenAIError(400, f"Invalid 'arms[{n}]': expected an object.", param=f"arms[{n}]")
            weight = field(arm, "weight", (int, float), default=1, param=f"arms[{n}].weight")
            arms.append(
                optimizer_pb2.ExperimentArm(
                    version=_int32(arm, "version", lo=1, required=True, param=f"arms[{n}].version"),
                    weight=check_number(f"arms[{n}].weight", weight, 0, 1e6),
                )
            )
        request = optimizer_pb2.StartExperimentRequest(
            prompt=_text(body, "prompt", MAX_NAME_CHARS, required=True),
            arms=arms,
            min_samples=_int32(body, "min_samples"),
            alpha=check_number("alpha", field(body, "alpha", (int, float), default=0), 0, 1),
            auto_promote=field(body, "auto_promote", bool, default=False),
        )
        await self._call(exchange, self._optimizer.StartExperiment, request)

    async def list_experiments(self, exchange: Exchange) -> None:
        query = query_params(exchange.query, ("prompt", "limit"))
        request = optimizer_pb2.ListExperimentsRequest(
            prompt=check_string("prompt", query.get("prompt", ""), MAX_NAME_CHARS), limit=_limit(query)
        )
        await self._call(exchange, self._optimizer.ListExperiments, request)

    async def list_evaluations(self, exchange: Exchange) -> None:
        request = optimizer_pb2.ListEvaluationsRequest(limit=_limit(query_params(exchange.query, ("limit",))))
        await self._call(exchange, self._optimizer.ListEvaluations, request)

    async def experiment(self, exchange: Exchange, experiment_id: str) -> None:
        request = optimizer_pb2.GetExperimentRequest(experiment_id=_path_id(experiment_id))
        await self._call(exchange, self._optimizer.GetExperiment, request)

    async def stop_experiment(self, exchange: Exchange, experiment_id: str) -> None:
        body = await _body(exchange)
        request = optimizer_pb2.StopExperimentRequest(
            experiment_id=_path_id(experiment_id), reason=_text(body, "reason", MAX_NOTE_CHARS)
        )
        await self._call(exchange, self._optimizer.StopExperiment, request)

    async def start_evaluation(self, exchange: Exchange) -> None:
        body = await _body(exchange)
        models = _strings(body, "models", MAX_EVALUATION_MODELS, MAX_NAME_CHARS)
        customers = _strings(body, "customers", MAX_EVALUATION_CUSTOMERS, MAX_IDENTIFIER_CHARS)
        request = optimizer_pb2.StartEvaluationRequest(
            models=models,
            customers=customers,
            questions=_int32(body, "questions"),
            seed=check_integer("seed", field(body, "seed", int, default=0), 0, INT64_MAX),
            prompt_version=_int32(body, "prompt_version"),
            note=_text(body, "note", MAX_NOTE_CHARS),
        )
        try:
            reply = await self._optimizer.StartEvaluation(request, timeout=30.0)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        await exchange.json(202, _json(reply))

    async def evaluation(self, exchange: Exchange, run_id: str) -> None:
        reply = await self._evaluation(run_id)
        answer = plain_dict(reply.run)
        # The report is JSON already: embedded as an object, not a string.
        answer = {"run": answer, "report": orjson.loads(reply.report_json) if reply.report_json else None}
        await exchange.json(200, orjson.dumps(answer))

    async def evaluation_report(self, exchange: Exchange, run_id: str) -> None:
        reply = await self._evaluation(run_id)
        if not reply.report_html:
            raise OpenAIError(409, f"Evaluation {run_id} has not finished yet.", code="evaluation_running")
        await exchange.start(200, [(b"content-type", b"text/html; charset=utf-8")])
        await exchange.send(reply.report_html.encode())

    async def _evaluation(self, run_id: str) -> optimizer_pb2.GetEvaluationResponse:
        try:
            reply: optimizer_pb2.GetEvaluationResponse = await self._optimizer.GetEvaluation(
                optimizer_pb2.GetEvaluationRequest(run_id=run_id), timeout=10.0
            )
            return reply
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None

    async def quality(self, exchange: Exchange) -> None:
        request = optimizer_pb2.GetQualityRequest(check_now="check=now" in exchange.query)
        await self._call(exchange, self._optimizer.GetQuality, request)

    async def quality_history(self, exchange: Exchange) -> None:
        query = query_params(exchange.query, HISTORY_PARAMS)
        group = query.get("group", "category")  # the optimizer names the groups it keeps
        # No hours: the range the data fills (a young mesh's few minutes, not a dot in a day).
        hours = number_param(query, "hours", 0.01, 24 * 90, "hours, a number")
        points = number_param(query, "points", 1, 500, "a number of points")
        if points != int(points):
            raise OpenAIError(400, "Invalid 'points': expected an integer.", param="points", code="invalid_type")
        request = optimizer_pb2.GetQualityHistoryRequest(
            group=group, since=time.time() - hours * 3600 if hours else 0.0, points=int(points), fit=not hours
        )
        await self._call(exchange, self._optimizer.GetQualityHistory, request)

    async def trigger_cycle(self, exchange: Exchange) -> None:
        body = await _body(exchange)
        request = optimizer_pb2.TriggerCycleRequest(
            prompt=_text(body, "prompt", MAX_NAME_CHARS),
            category=_text(body, "category", MAX_NAME_CHARS),
            reason=_text(body, "reason", MAX_NOTE_CHARS),
        )
        await self._call(exchange, self._optimizer.TriggerCycle, request)

    async def cycle_status(self, exchange: Exchange) -> None:
        await self._call(exchange, self._optimizer.GetCycleStatus, optimizer_pb2.GetCycleStatusRequest())
