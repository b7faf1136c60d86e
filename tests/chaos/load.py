"""Load: a steady mix of chats through Envoy's REST port, each one judged as
its user would see it.

Workers ask, one request after another: streamed and whole chats, questions
about a customer (by client id; the answer must name her and her status as
her records hold them) and general ones, under a few keys; a share of the
good answers get feedback. Two workers hold metered keys: one asks faster
than its requests-a-minute limit, one asks about a new customer every
second past its customers-an-hour limit, so the report can count what was
admitted beyond a limit.

Each request ends as one `Outcome`:
- `ok`: a whole answer (a stream ended by `[DONE]`) with the right facts;
- `error`: an explicit error (an HTTP error with an error body, a stream
  that ends with an error event and no `[DONE]`, or a connection that ends
  before the body does, which the client's HTTP library raises);
- `hung`: no end within `DEADLINE_S`;
- `wrong`: an answer that looks whole but is not right (a fact missing or
  false, a stream that ends cleanly without `[DONE]` or an error, a body
  that is not the API's).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from services.tilores_data.sample import generate_customers
from tests.chaos.cluster import KEYS

DEADLINE_S = 30.0
DESK_KEYS = [key for key, (key_id, _) in KEYS.items() if key_id.startswith("desk-")]
METERED_KEY = next(key for key, (key_id, _) in KEYS.items() if key_id == "metered")
LOOKUPS_KEY = next(key for key, (key_id, _) in KEYS.items() if key_id == "lookups")
GENERAL = "How can I improve my credit score?"
FEEDBACK_EVERY = 4  # one good answer in four gets feedback
METERED_EVERY_S = 1.0  # 60 a minute against a limit of 30
LOOKUP_EVERY_S = 1.0


@dataclass(frozen=True)
class Customer:
    name: str
    client_id: str
    status: str

    @property
    def question(self) -> str:
        return f"What is the status of client id {self.client_id}?"


def sample_customers(count_: int) -> list[Customer]:
    """The seeded store's customers after the demo one (the generator is deterministic)."""
    found = []
    for customer in list(generate_customers(count_ + 1))[1:]:
        contact = next(r for r in customer.records if r.get("SOURCE") == "Contact")
        name = f"{contact['FIRST_NAME']} {contact['LAST_NAME']}"
        found.append(Customer(name, contact["CLIENT_ID"], contact["STATUS"]))
    return found


@dataclass
class Outcome:
    kind: str  # chat, metered, lookup, feedback
    key: str
    started: float
    ended: float
    result: str  # ok, error, hung, wrong
    detail: str = ""
    completion_id: str = ""
    customer: str = ""
    status: int = 0
    wall: float = field(default_factory=time.time)  # when it started, by the clock the limits' windows use


@dataclass
class Load:
    rest_url: str
    workers: int = 6
    outcomes: list[Outcome] = field(default_factory=list)
    feedback: dict[str, bool] = field(default_factory=dict)  # acknowledged: completion id -> rating
    _customers: list[Customer] = field(default_factory=lambda: sample_customers(200))
    _turns: Iterator[int] = field(default_factory=itertools.count)

    async def run(self, stop: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        timeout = httpx.Timeout(DEADLINE_S, connect=DEADLINE_S)
        async with httpx.AsyncClient(base_url=self.rest_url, limits=limits, timeout=timeout) as client:
            tasks = [asyncio.create_task(self._chats(client, stop, n)) for n in range(self.workers)]
            tasks.append(asyncio.create_task(self._metered(client, stop)))
            tasks.append(asyncio.create_task(self._lookups(client, stop)))
            await asyncio.gather(*tasks)

    async def _chats(self, client: httpx.AsyncClient, stop: asyncio.Event, worker: int) -> None:
        while not stop.is_set():
            turn = next(self._turns)
            key = DESK_KEYS[turn % len(DESK_KEYS)]
            customer = self._customers[turn % len(self._customers)] if turn % 3 else None
            outcome = await self.chat(client, key, customer, stream=turn % 2 == 0)
            self.outcomes.append(outcome)
            if outcome.result == "ok" and turn % FEEDBACK_EVERY == 0:
                await self._feedback(client, key, outcome.completion_id, up=turn % 8 == 0)

    async def _metered(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            outcome = await self.chat(client, METERED_KEY, None, stream=False)
            outcome.kind = "metered"
            self.outcomes.append(outcome)
            await _sleep_until(stop, started + METERED_EVERY_S)

    async def _lookups(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        # New customers until the run ends (those past the limit are refused;
        # one seen this hour stays allowed when its turn comes again).
        for customer in itertools.cycle(self._customers[::-1]):
            if stop.is_set():
                return
            started = time.monotonic()
            outcome = await self.chat(client, LOOKUPS_KEY, customer, stream=False)
            outcome.kind = "lookup"
            self.outcomes.append(outcome)
            await _sleep_until(stop, started + LOOKUP_EVERY_S)

    async def chat(self, client: httpx.AsyncClient, key: str, customer: Customer | None, stream: bool) -> Outcome:
        question = customer.question if customer else GENERAL
        body = {"model": "offline", "messages": [{"role": "user", "content": question}], "stream": stream}
        outcome = Outcome("chat", key, time.monotonic(), 0.0, "wrong", customer=customer.client_id if customer else "")
        try:
            async with asyncio.timeout(DEADLINE_S):
                async with client.stream("POST", "/v1/chat/completions", json=body, headers=_auth(key)) as reply:
                    outcome.status = reply.status_code
                    if reply.status_code != 200:
                        raw = await reply.aread()
                        outcome.result, outcome.detail = _error(reply.status_code, raw)
                    elif stream:
                        await _read_stream(reply, outcome)
                    else:
                        answer = json.loads(await reply.aread())
                        outcome.completion_id = answer["id"]
                        outcome.detail = answer["choices"][0]["message"]["content"] or ""
                        outcome.result = "ok"
        except TimeoutError:
            outcome.result, outcome.detail = "hung", f"no end within {DEADLINE_S:.0f} s"
        except httpx.TransportError as error:
            # The connection failed, or closed before the body ended (no last
            # chunk): the client's HTTP library raises, as the SDKs do.
            where = "mid-stream" if outcome.status == 200 else "before an answer"
            outcome.result, outcome.detail = "error", f"connection ended {where}: {type(error).__name__}"
        except (ValueError, KeyError, IndexError) as error:
            outcome.result, outcome.detail = "wrong", f"not the API's body: {error!r}"
        outcome.ended = time.monotonic()
        if outcome.result == "ok":
            _judge(outcome, customer)
        return outcome

    async def _feedback(self, client: httpx.AsyncClient, key: str, completion_id: str, up: bool) -> None:
        body = {"completion_id": completion_id, "rating": "up" if up else "down", "comment": "chaos"}
        outcome = Outcome("feedback", key, time.monotonic(), 0.0, "wrong", completion_id=completion_id)
        try:
            async with asyncio.timeout(DEADLINE_S):
                reply = await client.post("/v1/feedback", json=body, headers=_auth(key))
            outcome.status = reply.status_code
            if reply.is_success:
                outcome.result = "ok"
                self.feedback[completion_id] = up
            else:
                outcome.result, outcome.detail = _error(reply.status_code, reply.content)
        except TimeoutError:
            outcome.result = "hung"
        except httpx.TransportError as error:
            outcome.result, outcome.detail = "error", f"transport: {type(error).__name__}"
        outcome.ended = time.monotonic()
        self.outcomes.append(outcome)


async def _read_stream(reply: httpx.Response, outcome: Outcome) -> None:
    parts: list[str] = []
    error = ""
    async for line in reply.aiter_lines():
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            if error:  # whatever follows an error event, no [DONE] may
                outcome.result, outcome.detail = "wrong", f"[DONE] after an error event: {error}"
            else:
                outcome.result, outcome.detail = "ok", "".join(parts)
            return
        event = json.loads(data)
        if "error" in event:
            error = str(event["error"].get("message", ""))[:120]
            continue
        outcome.completion_id = event.get("id", outcome.completion_id)
        for choice in event.get("choices", []):
            parts.append((choice.get("delta") or {}).get("content") or "")
    if error:
        outcome.result, outcome.detail = "error", f"stream error event: {error}"
    else:
        outcome.result, outcome.detail = "wrong", "stream ended without [DONE] or an error event"


def _judge(outcome: Outcome, customer: Customer | None) -> None:
    """An answer about a customer names her and states her status as her
    records hold it; a general one says something."""
    text = outcome.detail
    if customer is None:
        if not text.strip():
            outcome.result, outcome.detail = "wrong", "an empty answer"
        return
    if customer.name not in text or f"status: {customer.status}" not in text:
        outcome.result, outcome.detail = "wrong", f"{customer.name} / {customer.status} not in: {text[:200]}"


def _error(status: int, raw: bytes) -> tuple[str, str]:
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return "wrong", f"HTTP {status} without an error body: {raw[:120]!r}"
    return "error", f"HTTP {status}: {str(message)[:160]}"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _sleep_until(stop: asyncio.Event, when: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, when - time.monotonic()))
