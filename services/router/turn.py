"""Turn: one chat turn as plain code. Find the customer, build the context
the model may see, ask the model, run its data-tool calls and ask again,
replay or keep a deterministic answer, record how it went. Everything
outside the router is reached through the ports of
`services/router/ports.py`, so a turn can be tested with fakes.

The turn yields the answer's events as they arrive: a str per run of text,
then ToolCallDelta (the caller's own tools), Finish and Usage, or a
StreamError that ends it. A failure before anything was yielded is raised
(a Fault), so the caller can still answer with a status.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

from services.router.audience import Audiences
from services.router.grounding import (
    AMBIGUOUS,
    MAX_CANDIDATES,
    NO_IDENTIFIER,
    NOT_FOUND,
    OTHER_CUSTOMER,
    UNAVAILABLE,
    CustomerGrounding,
    ambiguous,
    fact_kinds,
    found,
)
from services.router.mode_selection import OTHER_CUSTOMER_REFUSED, select_mode
from services.router.ports import (
    CustomerDataUnavailable,
    CustomerMatch,
    GenerationCall,
    Grounding,
    KeptAnswer,
    NoSuchCustomer,
    NoSuchPrompt,
    Outcome,
    Prompt,
    TurnPeers,
)
from services.router.tools import MAX_ROUNDS, TOOLS, ToolRunner
from services.runtime.agent_modes import mode_label, prompt_name
from services.runtime.coalesce import batches, joined
from services.runtime.conversation import (
    Fact,
    Finish,
    Message,
    ResponseFormat,
    StreamError,
    Tool,
    ToolCallAssembly,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from services.runtime.customer_identifiers import Identifiers, identifiers_by_message, identifiers_in
from services.runtime.faults import Fault, NotFound
from services.runtime.field_policy import FieldPolicy
from services.runtime.limits import MAX_TOOL_RESULTS_SCORED, read_edges
from services.runtime.topics import topics_asked

# The share of a model's context window the customer context may fill, at
# roughly four characters a token; the rest is for the conversation and the
# answer.
CONTEXT_SHARE = 0.5
CHARS_PER_TOKEN = 4
MIN_CONTEXT_CHARS = 1500
_WORDS = re.compile(r"\s*\S+\s*|\s+")


@dataclass
class TurnRequest:
    """What the caller asks: the model, the conversation so far (the last
    user message is the question) and how to answer."""

    model: str
    messages: list[Message]
    tenant: str = ""
    conversation_id: str = ""
    completion_id: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    response_format: ResponseFormat | None = None
    tools: tuple[Tool, ...] = ()  # the caller's own: their calls go back to the caller
    tool_choice: ToolChoice | None = None
    no_fallback: bool = False
    cache_response: bool = False
    evaluation_run_id: str = ""  # asked by an evaluation run: no response cache, outcome scored for the run
    prompt_version: int = 0  # a pinned prompt version; 0: the registry's pick
    prompt_id: str = ""  # a named prompt instead of the mode's
    mode: str = ""  # agent or client as the request names it; "": slash commands decide
    category: str = ""  # status, credit or billing as the request names it
    # The identifier of the one customer a customer-facing principal is
    # (their signed-in account): client mode, and nobody else, whatever the
    # conversation says.
    customer: str = ""

    def question(self) -> str:
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    def tool_results(self) -> tuple[str, ...]:
        """What the caller's own tools returned after the newest user
        message (read in its edges): values the answer may take from them."""
        last_user = max((n for n, m in enumerate(self.messages) if m.role == "user"), default=-1)
        results = [read_edges(m.content) for m in self.messages[last_user + 1 :] if m.role == "tool"]
        return tuple(results[:MAX_TOOL_RESULTS_SCORED])

    @property
    def replayable(self) -> bool:
        """A deterministic request: an identical earlier answer may be replayed."""
        return not self.evaluation_run_id and (self.cache_response or self.temperature == 0)


@dataclass
class Plan:
    """What a turn settled before its first model call."""

    call: GenerationCall
    allowed: frozenset[str]  # personal data every model that may answer may see
    runs_tools: bool  # the router's data tools are on offer, and it runs them
    prompt: Prompt
    reply: str = ""  # set: no model is asked, the router answers this


@dataclass
class Round:
    """One model call's end: the data-tool calls it made, its finish and usage."""

    calls: ToolCallAssembly = field(default_factory=ToolCallAssembly)
    finish: Finish | None = None
    usage: Usage = field(default_factory=lambda: Usage(0, 0))


class Turn:
    def __init__(
        self,
        request: TurnRequest,
        clients: TurnPeers,
        policy: FieldPolicy,
        tools: ToolRunner | None,
        remaining: Callable[[], float],
        audiences: Audiences | None = None,
    ):
        self.selection = select_mode(
            request.messages, request.mode, request.category, client_only=bool(request.customer)
        )
        self.request = replace(request, messages=self.selection.messages)
        self.audience = (audiences or Audiences.bundled()).of(self.selection.mode)
        self._clients = clients
        self._policy = policy
        self._tools = tools
        self._remaining = remaining
        self._started = time.perf_counter()
        self._sent = 0
        self.provider_ms = 0.0  # the model provider's share of the time before the first event
        self.model = ""  # the model that answers, once known

    async def events(self) -> AsyncIterator[object]:
        reply = self.selection.reply
        if reply:
            answer = self._said(reply)
        else:
            plan = await self.plan()
            answer = self._said(plan.reply) if plan.reply else self._answer(plan)
        async for event in answer:
            yield event

    async def _answer(self, plan: Plan) -> AsyncIterator[object]:
        """The model's answer (or a kept one), tool rounds and all."""
        key = self._clients.answers.key(plan.call) if self.request.replayable else ""
        if key:
            kept = await self._clients.answers.get(self.request.tenant, key)
            if kept is not None:
                async for event in self._replay(kept):
                    yield event
                return
        kept = KeptAnswer() if key else None
        text: list[str] = []
        usage = Usage(0, 0)
        finish = None
        for round_number in range(MAX_ROUNDS + 1):
            if round_number == MAX_ROUNDS and plan.runs_tools:
                plan.call.tools = ()  # the last round must answer in words
            result = Round()
            async for event in self._ask(plan, result):
                if type(event) is str:
                    text.append(event)
                    if kept is not None:
                        kept.deltas.append(event)
                elif kept is not None:
                    kept = None  # a tool call or an error: not replayable
                if isinstance(event, StreamError):
                    self._record(plan, text, error=True)
                yield event
                if isinstance(event, StreamError):
                    return
            usage = Usage(
                usage.prompt_tokens + result.usage.prompt_tokens,
                usage.completion_tokens + result.usage.completion_tokens,
            )
            finish = result.finish
            if not result.calls or not plan.call.tools:
                break  # an answer; or calls made without tools on offer, which nothing runs
            await self._run_tools(plan, result.calls)
        # On record (on disk, with a spool) before the caller hears the turn
        # is over: a router killed after the answer loses no outcome.
        self._record(plan, text, error=False, usage=usage, model=finish.model if finish else "")
        if finish is not None:
            yield finish
        yield usage
        if kept is not None and finish is not None:
            kept.finish, kept.usage = finish, usage
            self._clients.answers.keep(self.request.tenant, key, kept)

    async def plan(self) -> Plan:
        """Everything before the first model call: the customer and the
        prompt, the models that may answer and what they may see, the
        context, the tools on offer."""
        request = self.request
        timeout_s = self._remaining()
        (grounding, prompt), (allowed, budget, supports_tools) = await asyncio.gather(
            self._grounding(timeout_s), self._model_limits()
        )
        if grounding.status == OTHER_CUSTOMER:
            return Plan(GenerationCall(request.model, [], Grounding(grounding.status)), allowed, False, prompt,
                        reply=OTHER_CUSTOMER_REFUSED)  # fmt: skip
        known = grounding.facts
        grounding.facts = self._policy.apply(self.audience.shown(known), allowed)
        focus = (self.selection.category,) if self.selection.category else ()
        context = grounding.text(budget, topics_asked(request.question()) or focus)
        system = Message("system", prompt.template.replace("{context}", context))
        # What the client sends back (earlier answers, tool results, its own
        # words) is masked like the context: an earlier answer of the offline
        # model may hold a date of birth a cloud model may not see.
        history = [self._masked(m, known, allowed) for m in request.messages]
        runs_tools = self._runs_data_tools(supports_tools)
        choice = request.tool_choice.mode if request.tool_choice else "auto"
        offered = () if choice == "none" else request.tools or (TOOLS if runs_tools else ())
        call = GenerationCall(
            model=request.model,
            messages=[system, *history],
            grounding=Grounding(
                grounding.status, grounding.query, grounding.customer_name, context, tuple(grounding.facts), focus
            ),
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            top_p=request.top_p,
            stop=request.stop,
            seed=request.seed,
            response_format=request.response_format,
            tools=offered,
            tool_choice=request.tool_choice if offered else None,
            tools_optional=runs_tools,
            no_fallback=request.no_fallback,
        )
        return Plan(call, allowed, runs_tools, prompt)

    def _runs_data_tools(self, supports_tools: bool) -> bool:
        """Whether the model is offered the router's data tools, which the
        router runs itself. The caller's own tools go to the model instead
        (and its calls back to the caller); tool_choice "none" offers none.
        They are only offered: the context is in the prompt, so a fallback
        that cannot call tools answers without them."""
        request = self.request
        choice = request.tool_choice.mode if request.tool_choice else "auto"
        return (
            supports_tools
            and not request.tools
            and self._tools is not None
            and choice == "auto"
            and not self.audience.own_account_only  # the data tools could search anyone
            and not request.customer
        )

    def _masked(self, message: Message, known: list[Fact], allowed: frozenset[str]) -> Message:
        mask = self._policy.mask_text
        calls = tuple(replace(c, arguments=mask(c.arguments, known, allowed)) for c in message.tool_calls)
        return replace(message, content=mask(message.content, known, allowed), tool_calls=calls)

    async def _grounding(self, timeout_s: float) -> tuple[CustomerGrounding, Prompt]:
        request = self.request
        own_account = self.audience.own_account_only
        candidates = identifiers_by_message([(m.role, m.content) for m in request.messages])
        if own_account:  # a name alone could be anyone's
            candidates = [c for c in candidates if c.exact]
        if request.customer:
            prompt = asyncio.ensure_future(self._prompt(True, timeout_s))
            try:
                return await self._bound_account(candidates, timeout_s), await prompt
            except BaseException:
                prompt.cancel()
                raise
        if not candidates:
            return CustomerGrounding(NO_IDENTIFIER), await self._prompt(False, timeout_s)
        # The prompt and the customer are independent: fetch them together.
        prompt = asyncio.ensure_future(self._prompt(True, timeout_s))
        try:
            if own_account:
                grounding = await self._own_account(candidates, timeout_s)
            else:
                grounding = await self._customer(candidates, timeout_s)
            if grounding.status == NOT_FOUND:
                await self._clients.access.admit([])  # past the limit, nobody is refused like anybody
        except BaseException:
            prompt.cancel()
            raise
        if grounding.status == NO_IDENTIFIER and self._prompt_name(False) != self._prompt_name(True):
            prompt.cancel()  # the names named nobody
            return grounding, await self._prompt(False, timeout_s)
        return grounding, await prompt

    def _prompt_name(self, customer: bool) -> str:
        selection = self.selection
        return self.request.prompt_id or prompt_name(selection.mode, selection.category, customer)

    async def _prompt(self, customer: bool, timeout_s: float) -> Prompt:
        """The mode's prompt (or the one the request names), at the pinned
        version where one is asked for and the prompt is the customer's."""
        request = self.request
        pinned = request.prompt_version if customer or request.prompt_id else 0
        try:
            return await self._clients.prompts.prompt(
                self._prompt_name(customer), request.conversation_id, timeout_s, pinned
            )
        except NoSuchPrompt as error:
            raise NotFound(str(error), field="prompt_version" if pinned else "prompt_id") from None

    async def _bound_account(self, candidates: list[Identifiers], timeout_s: float) -> CustomerGrounding:
        """The customer a customer-facing principal is: the one its signed
        token named. Any identifier in the conversation that finds anyone
        else, or nobody, refuses the turn; the same refusal either way, so
        it says nothing about who is a customer."""
        customers, tenant = self._clients.customers, self.request.tenant
        bound = identifiers_in(self.request.customer)
        named = {c.describe(): c for c in candidates if c.exact}  # a name alone could be anyone's
        try:
            own, *found_each = await asyncio.gather(
                customers.find(bound.search_parameters(), tenant, timeout_s),
                *(customers.find(c.search_parameters(), tenant, timeout_s) for c in named.values()),
            )
        except (CustomerDataUnavailable, NoSuchCustomer):
            return CustomerGrounding(UNAVAILABLE, bound.describe())
        if len(own) != 1:
            return CustomerGrounding(NOT_FOUND, bound.describe())
        for query, matches in zip(named, found_each, strict=True):
            if [m.entity_id for m in matches] != [own[0].entity_id]:
                return CustomerGrounding(OTHER_CUSTOMER, query)
        return await self._grounded(bound.describe(), own, timeout_s)

    async def _own_account(self, candidates: list[Identifiers], timeout_s: float) -> CustomerGrounding:
        """The customer of a conversation that may only be about one: the
        first identifier (oldest first) that finds exactly one customer. When
        the newest identifier names anyone else, whether they exist or not,
        the turn is refused and nothing about them is shown."""
        customers = self._clients.customers
        by_query: dict[str, Identifiers] = {}
        for identifiers in reversed(candidates):
            by_query.setdefault(identifiers.describe(), identifiers)
        queries = list(by_query)
        try:
            found_each = await asyncio.gather(
                *(customers.find(by_query[q].search_parameters(), self.request.tenant, timeout_s) for q in queries)
            )
        except (CustomerDataUnavailable, NoSuchCustomer):
            return CustomerGrounding(UNAVAILABLE, queries[0])
        found = dict(zip(queries, found_each, strict=True))
        newest = candidates[0].describe()
        bound = next((q for q in queries if len(found[q]) == 1), None)
        if bound is None:
            if len(found[newest]) > 1:
                return CustomerGrounding(AMBIGUOUS, newest)  # the candidates are other people: none shown
            return CustomerGrounding(NOT_FOUND, newest)
        owner = found[bound][0].entity_id
        if newest != bound and [m.entity_id for m in found[newest]] != [owner]:
            return CustomerGrounding(OTHER_CUSTOMER, newest)
        return await self._grounded(bound, found[bound], timeout_s)

    async def _customer(self, candidates: list[Identifiers], timeout_s: float) -> CustomerGrounding:
        """The customer of the newest message that names one. An exact
        identifier decides at once; names are looked up together and the
        first that finds a customer wins. Names typed as names ("Jasper
        Abbott") that find nobody are an answer (no customer matches); word
        pairs that merely could be names send the search on to the message
        before."""
        customers = self._clients.customers
        tenant = self.request.tenant
        for identifiers in candidates:
            if identifiers.exact:
                lookups = [(identifiers.describe(), identifiers.search_parameters())]
            else:
                lookups = [(name.describe(), name.search_parameters()) for name in identifiers.names]
            try:
                found_each = await asyncio.gather(*(customers.find(p, tenant, timeout_s) for _, p in lookups))
                for (query, _), matches in zip(lookups, found_each, strict=True):
                    if len(matches) == 1 and identifiers.exact:
                        # A bare ten-digit number: said as the client id or the phone it matched.
                        return await self._grounded(
                            identifiers.describe_found(matches[0].records()), matches, timeout_s
                        )
                    if matches or identifiers.exact:
                        return await self._grounded(query, matches, timeout_s)
            except (CustomerDataUnavailable, NoSuchCustomer):
                return CustomerGrounding(UNAVAILABLE, lookups[0][0])
            said = next((n for n in identifiers.names if n.written_as_name), None)
            if said is not None:
                return CustomerGrounding(NOT_FOUND, said.describe())
        return CustomerGrounding(NO_IDENTIFIER)

    async def _grounded(self, query: str, matches: list[CustomerMatch], timeout_s: float) -> CustomerGrounding:
        """The customer's facts, or the candidates; each customer shown is
        first admitted by the lookup limit and then put on record."""
        access = self._clients.access
        if not matches:
            return CustomerGrounding(NOT_FOUND, query)
        if len(matches) > 1:
            shown = [m.entity_id for m in matches[:MAX_CANDIDATES]]
            await access.admit(shown)
            access.record(shown, "chat.candidates", {"identity", "contact"})
            return ambiguous(query, [match.summary() for match in matches])
        await access.admit([matches[0].entity_id])
        profile = await self._clients.customers.profile(matches[0].entity_id, self.request.tenant, timeout_s)
        access.record([matches[0].entity_id], "chat.turn", fact_kinds(profile.facts()))
        return found(query, profile.customer_name, profile.facts())

    async def _model_limits(self) -> tuple[frozenset[str], int | None, bool]:
        """The personal data every provider that may answer is allowed to
        see, the context budget in characters, and whether the model can
        call tools."""
        models = await self._clients.models.models()
        model = models.get(self.request.model)
        if model is None:
            return self._policy.allowed([""]), MIN_CONTEXT_CHARS, False  # unknown: the default policy
        chain = [model.provider]
        if not self.request.no_fallback:
            chain += [models[f].provider for f in model.fallbacks if f in models]
        budget = None
        if model.context_window:
            conversation = sum(len(m.content) for m in self.request.messages)
            budget = max(MIN_CONTEXT_CHARS, int(model.context_window * CHARS_PER_TOKEN * CONTEXT_SHARE) - conversation)
        return self._policy.allowed(chain), budget, model.supports_tools

    async def _ask(self, plan: Plan, result: Round) -> AsyncIterator[object]:
        """One model call: its text and the caller's tool calls as they
        arrive (runs of text that piled up go on as one); the router's own
        tool calls, the finish and the usage into `result`."""
        stream = self._clients.generation.open(plan.call, self._remaining())
        started = time.perf_counter()
        timed = False
        try:
            async for batch in batches(stream.events()):
                if not timed and not self._sent:
                    timed = True
                    self.provider_ms += stream.provider_ms
                    self.model = stream.model or self.model
                for event in joined(batch, _text):
                    if isinstance(event, Usage):
                        result.usage = event
                    elif isinstance(event, Finish):
                        result.finish = event
                    elif isinstance(event, ToolCallDelta) and plan.runs_tools:
                        result.calls.add(event)
                    else:
                        self._sent += 1
                        yield event
        except Fault as fault:
            if not self._sent:
                self._record(plan, [], error=True)
                raise
            yield StreamError(fault.code, fault.message)
            return
        if result.calls and not self._sent:
            # A tool round before any answer: all of its model time counts.
            self.provider_ms += (time.perf_counter() - started) * 1000 - stream.provider_ms

    async def _run_tools(self, plan: Plan, calls: ToolCallAssembly) -> None:
        """Run the model's calls and give it the results for the next round."""
        timeout_s = self._remaining()
        ordered = calls.calls()
        if self._tools is None:  # calls are only run when the router's tools were on offer
            return
        results = await asyncio.gather(
            *(self._tools.run(c.name, c.arguments, plan.allowed, self.request.tenant, timeout_s) for c in ordered)
        )
        plan.call.messages.append(Message("assistant", "", tuple(ordered)))
        plan.call.messages.extend(
            Message("tool", result, tool_call_id=c.id) for c, result in zip(ordered, results, strict=True)
        )

    async def _said(self, text: str) -> AsyncIterator[object]:
        """The router's own answer (a command's, a refusal), streamed like a
        model's; no model is asked and no outcome is recorded."""
        self.model = self.request.model
        words = _WORDS.findall(text)
        limit = self.request.max_tokens
        for word in words[:limit] if limit else words:
            yield word
        yield Finish("length" if limit and len(words) > limit else "stop", self.request.model)
        yield Usage(0, 0)

    async def _replay(self, kept: KeptAnswer) -> AsyncIterator[object]:
        """A kept answer word by word, as a model would stream it."""
        self.model = kept.finish.model if kept.finish else ""
        for delta in kept.deltas:
            for word in _WORDS.findall(delta):
                yield word
        if kept.finish is not None:
            yield kept.finish
        yield kept.usage or Usage(0, 0)

    def _record(self, plan: Plan, text: list[str], *, error: bool, usage: Usage | None = None, model: str = "") -> None:
        # Off the hot path: the optimizer scores the turn and feeds experiments.
        # A turn answered with the fallback instruction (the optimizer was
        # away) is recorded too, as version 0 of its prompt.
        if not self.request.completion_id:
            return
        self._clients.outcomes.post(
            Outcome(
                completion_id=self.request.completion_id,
                prompt=plan.prompt,
                model=model or self.request.model,
                latency_ms=(time.perf_counter() - self._started) * 1000,
                tokens=usage.total_tokens if usage else 0,
                error=error,
                question=read_edges(self.request.question()),  # what the scorer reads of it
                answer="".join(text),
                grounding=plan.call.grounding,
                evaluation_run_id=self.request.evaluation_run_id,
                mode=mode_label(self.selection.mode, self.selection.category),
                tool_results=self.request.tool_results(),
            )
        )


def _text(event: object) -> str | None:
    return event if type(event) is str else None
