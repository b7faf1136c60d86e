"""FailoverChain: run a request along a model's fallback chain.

Before the first event a target that fails with 429, 5xx, a connect error or
a timeout is retried (bounded, jittered exponential backoff that honours
Retry-After, inside the caller's deadline) and then left for the next model
of the chain. After the first event nothing is retried: the error goes to
the caller, who has already seen tokens. A CircuitBreaker per provider keeps
requests away from a provider that keeps failing."""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import cast

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from services.llm_gateway.catalog import EMBEDDING, CatalogError, ModelCatalog, ModelEntry
from services.llm_gateway.generation_telemetry import GenerationObservation, GenerationTelemetry
from services.llm_gateway.providers.events import GenerationRequest, Started
from services.llm_gateway.providers.provider import EmbeddingProvider, Provider
from services.runtime.conversation import Finish
from services.runtime.faults import (
    DeadlineExceeded,
    FailedPrecondition,
    Fault,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
CHANGES_KEPT = 20  # a breaker's changes of state a health page can show
RETRYABLE = (ResourceExhausted, Unavailable, DeadlineExceeded)


class CircuitBreaker:
    """Closed: requests flow. `failure_threshold` failures in a row open it
    for `open_s`; then half-open lets one trial through, whose outcome closes
    or re-opens it."""

    def __init__(
        self,
        failure_threshold: int = 5,
        open_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._state = CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._trial_started: float | None = None
        # The latest changes of state, (seconds since the epoch, new state), oldest first.
        self.changes: collections.deque[tuple[float, str]] = collections.deque(maxlen=CHANGES_KEPT)

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        if state != self._state:
            self.changes.append((self._wall_clock(), state))
        self._state = state

    def allow(self) -> bool:
        if self.state == CLOSED:
            return True
        now = self._clock()
        if self.state == OPEN and now - self._opened_at >= self.open_s:
            self.state = HALF_OPEN
            self._trial_started = None
        # One trial at a time; a trial that never reported back (cancelled,
        # or refused for a bad request) is given up after the open period.
        if self.state == HALF_OPEN and (self._trial_started is None or now - self._trial_started >= self.open_s):
            self._trial_started = now
            return True
        return False

    def retry_after_s(self) -> float:
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.open_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        self.state = CLOSED
        self.consecutive_failures = 0
        self._trial_started = None

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self.state == HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            self.state = OPEN
            self._opened_at = self._clock()
            self._trial_started = None


@dataclass
class ProviderCounters:
    successes: int = 0
    failures_before_first_token: int = 0
    failures_mid_stream: int = 0
    retries: int = 0
    fallbacks: int = 0  # given up for the next model of a chain


class FailoverChain:
    def __init__(
        self,
        catalog: ModelCatalog,
        providers: Mapping[str, Provider],
        *,
        retries: int = 1,
        max_retry_wait_s: float = 2.0,
        breaker_threshold: int = 5,
        breaker_open_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        telemetry: GenerationTelemetry | None = None,
    ):
        self.catalog = catalog
        self.telemetry = telemetry or GenerationTelemetry()
        self.providers = dict(providers)
        for entry in catalog.entries:
            provider = self.providers.get(entry.provider)
            if entry.kind == EMBEDDING and provider is not None and not isinstance(provider, EmbeddingProvider):
                raise CatalogError(f"model {entry.id!r}: provider {entry.provider!r} cannot embed")
        self.retries = retries
        self.max_retry_wait_s = max_retry_wait_s
        self._clock = clock
        names = {entry.provider for entry in catalog.entries}
        self.breakers = {name: CircuitBreaker(breaker_threshold, breaker_open_s, clock) for name in names}
        self.counters = {name: ProviderCounters() for name in names}

    async def stream(self, model: str, request: GenerationRequest, no_fallback: bool = False) -> AsyncIterator[object]:
        """Events of the first target that starts answering: `Started` names
        it first, and so does the Finish event at the end."""
        deadline = self._clock() + request.timeout_s if request.timeout_s else None
        chain = self.catalog.chain(model)
        requested = chain[0]
        last_fault: Fault | None = None
        skipped_open: list[str] = []
        passed_over: list[str] = []  # why a target of the chain did not answer
        for target in chain[:1] if no_fallback else chain:
            if target.provider not in self.providers:
                passed_over.append(f"{target.id}: provider {target.provider!r} is not configured")
                continue
            attempt_request = dataclasses.replace(request, upstream_model=target.upstream)
            if request.tools and not target.supports_tools:
                if not request.tools_optional:
                    passed_over.append(f"{target.id}: cannot call tools")
                    continue
                # Offered tools only: this model answers from the prompt alone.
                attempt_request = dataclasses.replace(attempt_request, tools=(), tool_choice=None)
            breaker = self.breakers[target.provider]
            if not breaker.allow():
                skipped_open.append(target.provider)
                passed_over.append(f"{target.id}: circuit open for {target.provider}")
                continue
            try:
                stream, first, observation = await self._start(target, attempt_request, deadline)
            except InvalidArgument as fault:
                if target is requested:
                    raise
                passed_over.append(f"{target.id}: {fault.message}")
                continue  # a fallback that cannot honour the request is skipped
            except RETRYABLE as fault:
                last_fault = fault
                passed_over.append(f"{target.id}: {fault.message}")
                self.counters[target.provider].fallbacks += 1
                continue
            yield Started(target.id, target.provider)
            async for event in self._relay(target, stream, first, observation):
                yield event
            return
        raise self._nobody_answered(model, requested, passed_over, last_fault, skipped_open)

    def _nobody_answered(
        self,
        model: str,
        requested: ModelEntry,
        passed_over: list[str],
        last_fault: Fault | None,
        skipped_open: list[str],
    ) -> Fault:
        """Why no target of the chain answered, each named: the requested
        model's provider not configured, the last provider failure, or every
        circuit open (with when to try again)."""
        if requested.provider not in self.providers:
            others = f"; {'; '.join(passed_over[1:])}" if passed_over[1:] else ""
            return FailedPrecondition(
                f"model {requested.id!r} needs provider {requested.provider!r}, which is not configured "
                f"(its API key is not set){others}",
                field="model",
            )
        if last_fault is not None and not skipped_open:
            return type(last_fault)(
                f"no model of the chain answered: {'; '.join(passed_over)}",
                field=last_fault.field,
                retry_after_s=last_fault.retry_after_s,
            )
        retry_after = min((self.breakers[p].retry_after_s() for p in skipped_open), default=None)
        return Unavailable(
            f"every provider for model {model!r} is unavailable: {'; '.join(passed_over)}", retry_after_s=retry_after
        )

    async def embed(
        self, model: str, texts: list[str], token_inputs: list[list[int]], dimensions: int, timeout_s: float | None
    ) -> tuple[str, list[list[float]], int]:
        """(the model that answered, the vectors, the input tokens): the
        model, else the same model served by another provider. Inputs go in
        as few calls as the provider allows (its max_inputs each); a target
        that fails is retried, then left for the next, as for chat."""
        deadline = self._clock() + timeout_s if timeout_s else None
        chain = self.catalog.embedding_chain(model)
        requested = chain[0]
        passed_over: list[str] = []
        last_fault: Fault | None = None
        for target in chain:
            if target.provider not in self.providers:
                passed_over.append(f"{target.id}: provider {target.provider!r} is not configured")
                continue
            breaker = self.breakers[target.provider]
            if not breaker.allow():
                passed_over.append(f"{target.id}: circuit open for {target.provider}")
                continue
            try:
                vectors, tokens = await self._embed_on(target, texts, token_inputs, dimensions, deadline)
            except InvalidArgument:
                if target is requested:
                    raise
                continue
            except RETRYABLE as fault:
                last_fault = fault
                passed_over.append(f"{target.id}: {fault.message}")
                self.counters[target.provider].fallbacks += 1
                continue
            breaker.record_success()
            return target.id, vectors, tokens
        if requested.provider not in self.providers and last_fault is None:
            raise FailedPrecondition(
                f"model {requested.id!r} needs provider {requested.provider!r}, which is not configured "
                f"(its API key is not set); {'; '.join(passed_over)}",
                field="model",
            )
        if last_fault is not None:
            kind, retry_after = type(last_fault), last_fault.retry_after_s
        else:  # every breaker open
            kind, retry_after = Unavailable, min(self.breakers[t.provider].retry_after_s() for t in chain)
        raise kind(f"every provider for model {model!r} is unavailable: {'; '.join(passed_over)}",
                   retry_after_s=retry_after)  # fmt: skip

    async def _embed_on(
        self,
        target: ModelEntry,
        texts: list[str],
        token_inputs: list[list[int]],
        dimensions: int,
        deadline: float | None,
    ) -> tuple[list[list[float]], int]:
        provider = cast(EmbeddingProvider, self.providers[target.provider])  # checked when the chain was built
        breaker = self.breakers[target.provider]
        vectors: list[list[float]] = []
        tokens = 0
        step = target.max_inputs
        for start in range(0, len(texts) + len(token_inputs), step):
            async for attempt in self._retrying(target.provider, deadline):
                with attempt:
                    left = None if deadline is None else deadline - self._clock()
                    if left is not None and left <= 0:
                        raise DeadlineExceeded("the caller's deadline passed before a model answered")
                    try:
                        batch, used = await provider.embed(
                            target.upstream, texts[start : start + step], token_inputs[start : start + step],
                            dimensions if target.adjustable_dimensions else 0, left,
                        )  # fmt: skip
                    except RETRYABLE:
                        breaker.record_failure()
                        raise
            vectors += batch
            tokens += used
        return vectors, tokens

    def _retrying(self, provider: str, deadline: float | None) -> AsyncRetrying:
        """Bounded retries of a retryable fault, honouring Retry-After and
        the caller's deadline, while the provider's breaker allows."""
        breaker = self.breakers[provider]
        counters = self.counters[provider]

        def remaining() -> float | None:
            return None if deadline is None else deadline - self._clock()

        def wait(state: RetryCallState) -> float:
            fault = state.outcome.exception() if state.outcome else None
            hinted = getattr(fault, "retry_after_s", None)
            return hinted if hinted is not None else wait_random_exponential(multiplier=0.1, max=1.0)(state)

        def worth_retrying(error: BaseException) -> bool:
            if not isinstance(error, RETRYABLE) or not breaker.allow():
                return False
            hinted = getattr(error, "retry_after_s", None) or 0.0
            left = remaining()
            # A Retry-After longer than we may wait: go to the next model now.
            again = hinted <= self.max_retry_wait_s and (left is None or left > hinted + 0.05)
            counters.retries += again
            return again

        return AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait,
            retry=retry_if_exception(worth_retrying),
            reraise=True,
        )

    async def _start(
        self, target: ModelEntry, request: GenerationRequest, deadline: float | None
    ) -> tuple[AsyncGenerator[object, None], object | None, GenerationObservation]:
        """Open the target's stream and read its first event, with retries."""
        provider = self.providers[target.provider]
        breaker = self.breakers[target.provider]
        counters = self.counters[target.provider]

        def remaining() -> float | None:
            return None if deadline is None else deadline - self._clock()

        async for attempt in self._retrying(target.provider, deadline):
            with attempt:
                left = remaining()
                if left is not None and left <= 0:
                    raise DeadlineExceeded("the caller's deadline passed before a model answered")
                stream = provider.stream(dataclasses.replace(request, timeout_s=left))
                observation = self.telemetry.observe(target, request)
                try:
                    with observation.active():
                        first = await anext(stream)
                except StopAsyncIteration:
                    first = None
                except BaseException as error:
                    observation.end(error)
                    await stream.aclose()
                    if isinstance(error, RETRYABLE):
                        counters.failures_before_first_token += 1
                        breaker.record_failure()
                    raise
                return stream, first, observation
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _relay(
        self,
        target: ModelEntry,
        stream: AsyncGenerator[object, None],
        first: object | None,
        observation: GenerationObservation,
    ) -> AsyncIterator[object]:
        breaker = self.breakers[target.provider]
        counters = self.counters[target.provider]
        try:
            if first is not None:
                observation.event(first)
                yield self._named(first, target)
            async for event in stream:
                observation.event(event)
                yield self._named(event, target)
        except Fault as fault:
            counters.failures_mid_stream += 1
            breaker.record_failure()
            observation.end(fault)
            raise
        except BaseException as error:  # cancelled by the caller
            observation.end(error)
            raise
        finally:
            await stream.aclose()
        observation.end()
        counters.successes += 1
        breaker.record_success()

    @staticmethod
    def _named(event: object, target: ModelEntry) -> object:
        if isinstance(event, Finish):
            return Finish(event.reason, model=target.id, provider=target.provider)
        return event
