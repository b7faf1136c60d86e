"""What a chat turn needs from outside the router, as plain types: the
values that cross (a customer match, a profile, a prompt, a model, a
generation call, a kept answer, an outcome), the errors a peer's failure
becomes, and the Protocol of each peer. The adapters in
`services/router/peers/` implement them over gRPC; a test fakes them.

CustomerData   customers by search parameters, their profile, links, fields
Prompts        the prompt version a conversation gets
ModelCatalog   the models that can answer: provider, fallbacks, window
Generation     one model answer, streamed as plain events
AnswerCache    deterministic answers kept for replay, per tenant
Outcomes       how each turn went, for the optimizer
AccessLedger   every look at a customer, on record
AccessGate     the lookup limit, then the access log, before customers are shown
TurnPeers      all of them, as a turn is given them
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from services.runtime.conversation import Fact, Finish, Message, ResponseFormat, Tool, ToolChoice, Usage

# -- what a peer's failure becomes -------------------------------------------


class CustomerDataUnavailable(Exception):
    """Customer data could not be read (tilores_data or the backend is away)."""


class UnknownCategory(Exception):
    """tilores_data knows no field category of that name."""


class NoSuchCustomer(Exception):
    """No customer has that entity id."""


class NoSuchPrompt(Exception):
    """The registry has no prompt of that name, or no such version of it."""


# -- customers ---------------------------------------------------------------


@dataclass(frozen=True)
class CustomerMatch:
    """One customer a search found. The summary reads the records only
    when asked (a single match never needs it)."""

    entity_id: str
    records_json: tuple[str, ...]

    def records(self) -> Iterator[dict[str, Any]]:
        """The records, each read only when reached."""
        return (orjson.loads(r) for r in self.records_json)

    def name(self) -> str:
        """ "First Last" as the records give it; "" when they give none."""
        return _name_of(_contact(list(self.records())))

    def summary(self) -> tuple[str, str]:
        """`Name, client id …, email …` and the record it is read from."""
        records = list(self.records())
        contact = _contact(records)
        parts = [_name_of(contact) or "name not on file"]
        for label, key in (("client id", "CLIENT_ID"), ("email", "EMAIL")):
            value = next((r[key] for r in records if r.get(key)), "")
            if value:
                parts.append(f"{label} {value}")
        return ", ".join(parts), str(contact.get("id", ""))


def _contact(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The record that names the customer: the first with a first name."""
    return next((r for r in records if r.get("FIRST_NAME")), records[0] if records else {})


def _name_of(contact: dict[str, Any]) -> str:
    return " ".join(str(contact[k]) for k in ("FIRST_NAME", "LAST_NAME") if contact.get(k))


@dataclass(frozen=True)
class CustomerProfile:
    """A customer's 360 view and credit report as facts: per section, each
    fact with its topic and record; the credit report as the data tools
    give it; the advice the report supports, each citing its report."""

    entity_id: str
    customer_name: str
    sections: dict[str, tuple[Fact, ...]]
    credit: dict[str, Any]
    advice: tuple[Fact, ...] = ()

    def facts(self) -> list[Fact]:
        return [fact for facts in self.sections.values() for fact in facts] + list(self.advice)


class CustomerData(Protocol):
    async def find(self, parameters: dict[str, str], tenant: str, timeout_s: float) -> list[CustomerMatch]:
        """Every customer matching the search parameters."""

    async def profile(self, entity_id: str, tenant: str, timeout_s: float) -> CustomerProfile:
        """The customer's 360 view and credit report; NoSuchCustomer."""

    async def relationships(self, entity_id: str, timeout_s: float) -> list[dict[str, str]]:
        """How the customer's records are linked."""

    async def fields(self, category: str, timeout_s: float) -> dict[str, list[str]]:
        """The fields held, by category."""


# -- prompts and models ------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    template: str
    experiment_id: int = 0


class Prompts(Protocol):
    async def prompt(self, name: str, conversation_id: str, timeout_s: float, version: int = 0) -> Prompt:
        """The version this conversation gets, or the `version` pinned; NoSuchPrompt."""


@dataclass(frozen=True)
class ModelInfo:
    id: str
    provider: str
    context_window: int
    supports_tools: bool
    fallbacks: tuple[str, ...]


class ModelCatalog(Protocol):
    async def models(self) -> dict[str, ModelInfo]:
        """The catalog by id; empty while nobody can say."""


# -- generation ----------------------------------------------------------------


@dataclass(frozen=True)
class Grounding:
    """The customer data behind the system prompt, for the model service
    (the offline model answers from these facts alone)."""

    status: str
    query: str = ""
    customer_name: str = ""
    text: str = ""
    facts: tuple[Fact, ...] = ()
    focus: tuple[str, ...] = ()  # topics the conversation's category points at


@dataclass
class GenerationCall:
    """What one model call is given: the model, the whole conversation
    (system prompt first), the sampling options and the tools on offer."""

    model: str
    messages: list[Message]
    grounding: Grounding
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    response_format: ResponseFormat | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    tools_optional: bool = False
    no_fallback: bool = False


class GenerationStream(Protocol):
    """One model call's events (a str per text delta, then ToolCallDelta,
    Finish, Usage, StreamError); a failure before any is a Fault. Once the
    first event is read, `provider_ms` and `model` say what its start said."""

    provider_ms: float
    model: str

    def events(self) -> AsyncIterator[object]: ...


class Generation(Protocol):
    def open(self, call: GenerationCall, timeout_s: float) -> GenerationStream: ...


# -- answers kept for replay, and outcomes -------------------------------------


@dataclass
class KeptAnswer:
    deltas: list[str] = field(default_factory=list)
    finish: Finish | None = None
    usage: Usage | None = None


class AnswerCache(Protocol):
    def key(self, call: GenerationCall) -> str:
        """Everything the model is given, so changed data is another key."""

    async def get(self, tenant: str, key: str) -> KeptAnswer | None: ...

    def keep(self, tenant: str, key: str, answer: KeptAnswer) -> None:
        """Off the hot path."""


@dataclass(frozen=True)
class Outcome:
    """How one turn went, for the optimizer to score and learn from."""

    completion_id: str
    prompt: Prompt
    model: str
    latency_ms: float
    tokens: int
    error: bool
    question: str
    answer: str
    grounding: Grounding
    evaluation_run_id: str = ""
    mode: str = ""  # mode and category, e.g. "client/billing"
    tool_results: tuple[str, ...] = ()  # what the caller's own tools returned for the question


class Outcomes(Protocol):
    def post(self, outcome: Outcome) -> None:
        """Kept and retried until the optimizer takes it."""


class AccessLedger(Protocol):
    def record(self, entity_ids: Iterable[str], action: str, field_kinds: Iterable[str] = ()) -> None:
        """On record before the answer goes out."""

    async def close(self) -> None: ...


class AccessGate(Protocol):
    async def admit(self, entity_ids: list[str]) -> None:
        """Raises a ResourceExhausted fault when these are too many new customers."""

    def record(self, entity_ids: list[str], action: str, field_kinds: set[str]) -> None: ...


class TurnPeers(Protocol):
    """What a turn needs of its peers (read-only: any adapter of each port will do)."""

    @property
    def customers(self) -> CustomerData: ...
    @property
    def prompts(self) -> Prompts: ...
    @property
    def models(self) -> ModelCatalog: ...
    @property
    def generation(self) -> Generation: ...
    @property
    def answers(self) -> AnswerCache: ...
    @property
    def outcomes(self) -> Outcomes: ...
    @property
    def access(self) -> AccessGate: ...
