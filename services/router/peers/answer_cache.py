"""Deterministic answers kept in the cache service for replay, per
tenant: the key is everything the model is given, the value the answer's
text, finish and usage."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import grpc
from tilores_x.v1 import cache_pb2, cache_pb2_grpc, router_pb2

from services.router.peers.generation import generate_request
from services.router.ports import GenerationCall, KeptAnswer
from services.runtime.conversation import Usage
from services.runtime.conversation_wire import finish_of, finish_proto, usage_proto

log = logging.getLogger("router.answers")

CACHE_TIMEOUT_S = 0.25
ANSWER_NAMESPACE = "llm_response"


class AnswerCacheOverGrpc:
    def __init__(self, cache: cache_pb2_grpc.CacheServiceStub):
        self._cache = cache
        self._background: set[asyncio.Task[None]] = set()

    @staticmethod
    def key(call: GenerationCall) -> str:
        """Everything the model is given, customer context included, so
        changed data is a different key."""
        raw = generate_request(call).SerializeToString(deterministic=True)
        return "answer:" + hashlib.blake2b(raw, digest_size=20).hexdigest()

    async def get(self, tenant: str, key: str) -> KeptAnswer | None:
        try:
            cached = await self._cache.Get(
                cache_pb2.GetRequest(tenant=tenant, namespace=ANSWER_NAMESPACE, key=key), timeout=CACHE_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            log.warning("cache.get_failed", extra={"fields": {"code": error.code().name}})
            cached = None
        if cached is None or not cached.found:
            return None
        kept = router_pb2.CachedAnswer.FromString(cached.value)
        finish = finish_of(kept.finish) if kept.HasField("finish") else None
        usage = Usage(kept.usage.prompt_tokens, kept.usage.completion_tokens)
        return KeptAnswer(list(kept.deltas), finish, usage)

    def keep(self, tenant: str, key: str, answer: KeptAnswer) -> None:
        """Store an answer for replay, off the hot path (the namespace's TTL)."""
        kept = router_pb2.CachedAnswer(deltas=answer.deltas)
        if answer.finish is not None:
            kept.finish.CopyFrom(finish_proto(answer.finish))
        if answer.usage is not None:
            kept.usage.CopyFrom(usage_proto(answer.usage))

        async def store() -> None:
            try:
                await self._cache.Set(
                    cache_pb2.SetRequest(
                        tenant=tenant, namespace=ANSWER_NAMESPACE, key=key, value=kept.SerializeToString()
                    ),
                    timeout=1.0,
                )
            except grpc.aio.AioRpcError as error:
                log.warning("cache.set_failed", extra={"fields": {"code": error.code().name}})

        task = asyncio.ensure_future(store())
        self._background.add(task)  # held until done, so it is not collected
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=2.0)
