"""The prompt a conversation gets, from the optimizer, kept a few seconds;
the optimizer away, an honest fallback instruction. NOT_FOUND is
NoSuchPrompt."""

from __future__ import annotations

import logging

import grpc
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from services.router.ports import NoSuchPrompt, Prompt
from services.runtime.lru import LruCache

log = logging.getLogger("router.prompts")

# Used only when the optimizer cannot be reached, so a turn still gets an
# honest instruction rather than none.
FALLBACK_TEMPLATE = (
    "You are a customer-data assistant. Use only the data below and say when a value is not on file; "
    "never invent customer data.\n\n{context}"
)


class PromptsOverGrpc:
    def __init__(self, optimizer: optimizer_pb2_grpc.OptimizerServiceStub, ttl_s: float):
        self._optimizer = optimizer
        # The active prompt changes rarely; a few seconds of reuse saves a
        # hop on every turn, and a new version is live within that time.
        self._kept: LruCache[tuple[str | int, ...], Prompt] = LruCache(max_entries=256, max_bytes=4 * 1024 * 1024)
        self._ttl_s = ttl_s

    async def prompt(self, name: str, conversation_id: str, timeout_s: float, version: int = 0) -> Prompt:
        """The version this conversation gets, or the `version` pinned.
        Reused for a few seconds: per prompt while no experiment runs, per
        conversation while one does (experiments assign by conversation).
        The optimizer away: a fallback instruction, never none."""
        if version:
            kept = self._kept.get((name, "version", version))
        else:
            kept = self._kept.get((name,)) or self._kept.get((name, conversation_id))
        if kept is not None:
            return kept
        try:
            response = await self._optimizer.GetPrompt(
                optimizer_pb2.GetPromptRequest(name=name, conversation_id=conversation_id, version=version),
                timeout=min(1.0, timeout_s),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NoSuchPrompt(error.details()) from None
            log.warning("optimizer.get_prompt_failed", extra={"fields": {"code": error.code().name}})
            return Prompt(name, 0, FALLBACK_TEMPLATE)
        prompt = Prompt(response.name, response.version, response.template, response.experiment_id)
        if self._ttl_s > 0:
            key: tuple[str | int, ...] = (name, conversation_id) if prompt.experiment_id else (name,)
            if version:
                key = (name, "version", version)
            self._kept.set(key, prompt, self._ttl_s, size=len(prompt.template))
        return prompt
