"""One chat turn with fake adapters, no server: the customer found by
e-mail becomes the context the model sees, the model's data-tool calls are
run and answered, a failure before any word is raised and one after ends
the stream, and every turn is recorded."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from services.router.clients import CustomerMatch, CustomerProfile, ModelInfo, Prompt
from services.router.lookup_limit import LookupLimitReached
from services.router.tools import ToolRunner
from services.router.turn import Turn, TurnRequest
from services.runtime.conversation import Fact, Finish, Message, StreamError, ToolCallDelta, Usage
from services.runtime.faults import Unavailable
from services.runtime.field_policy import FieldPolicy

EDWINA = CustomerProfile(
    entity_id="e-1",
    customer_name="Edwina Hawthorne",
    sections={
        "identity": (
            Fact("identity", "Name", "Edwina Hawthorne", "003A"),
            Fact("identity", "Date of birth", "1984-06-12", "003A", "date_of_birth"),
        ),
        "status": (Fact("status", "Account status", "Active", "003A"),),
    },
    credit={"entity_id": "e-1", "bureaus": [], "assessment": {"status": "scored", "score": 712}},
)


class FakeCustomers:
    def __init__(self):
        self.searches: list[dict] = []

    async def find(self, parameters, tenant, timeout_s):
        self.searches.append(parameters)
        if parameters.get("EMAIL") == "edwina.hawthorne@example.com":
            return [CustomerMatch("e-1", ())]
        return []

    async def profile(self, entity_id, tenant, timeout_s):
        return EDWINA


class FakePrompts:
    async def prompt(self, name, conversation_id, timeout_s, version=0):
        return Prompt(name, 1, f"[{name} prompt]\n{{context}}")


class FakeModels:
    async def models(self):
        return {
            "cloud": ModelInfo("cloud", "openai", 128000, True, ("offline",)),
            "offline": ModelInfo("offline", "offline", 32768, False, ()),
        }


class FakeAnswers:
    async def get(self, tenant, key):
        return None

    def keep(self, tenant, key, answer):
        pass


class FakeOutcomes:
    def __init__(self):
        self.posted = []

    def post(self, outcome):
        self.posted.append(outcome)


class FakeStream:
    def __init__(self, events, model):
        self._events = events
        self.provider_ms = 5.0
        self.model = model

    async def events(self):
        for event in self._events:
            if isinstance(event, Exception):
                raise event
            await asyncio.sleep(0)
            yield event


class FakeGeneration:
    """Answers each call with the next scripted list of events."""

    def __init__(self, *scripts):
        self._scripts = list(scripts)
        self.calls = []

    def open(self, call, timeout_s):
        self.calls.append(call)
        return FakeStream(self._scripts.pop(0), call.model)


class FakeAccess:
    """The lookup limit and the access log: admits up to `limit` customers."""

    def __init__(self, limit: int = 10):
        self.limit = limit
        self.admitted: list[str] = []
        self.records: list[tuple[list[str], str, set[str]]] = []

    async def admit(self, entity_ids):
        new = [e for e in entity_ids if e not in self.admitted]
        if len(self.admitted) + len(new) > self.limit:
            raise LookupLimitReached("key/desk-7 has looked at 0 different customers this hour, the limit is 0")
        self.admitted += new

    def record(self, entity_ids, action, field_kinds):
        self.records.append((list(entity_ids), action, set(field_kinds)))


class Clients:
    def __init__(self, generation):
        self.access = FakeAccess()
        self.customers = FakeCustomers()
        self.prompts = FakePrompts()
        self.models = FakeModels()
        self.answers = FakeAnswers()
        self.outcomes = FakeOutcomes()
        self.generation = generation


def _turn(clients: Clients, model: str, question: str) -> Turn:
    policy = FieldPolicy.bundled()
    request = TurnRequest(model=model, messages=[Message("user", question)], completion_id="chatcmpl-1")
    return Turn(request, clients, policy, ToolRunner(clients.customers, policy, clients.access), lambda: 10.0)


async def _events(turn: Turn) -> list:
    return [event async for event in turn.events()]


async def test_the_customer_becomes_the_context_the_model_sees_masked_for_its_provider():
    answer = ["Edwina ", "is Active."]
    clients = Clients(FakeGeneration([*answer, Finish("stop", "cloud", "openai"), Usage(10, 3)]))
    events = await _events(_turn(clients, "cloud", "Status of edwina.hawthorne@example.com?"))
    assert "".join(e for e in events if type(e) is str) == "Edwina is Active."
    assert events[-2:] == [Finish("stop", "cloud", "openai"), Usage(10, 3)]
    [call] = clients.generation.calls
    system = call.messages[0].content
    assert system.startswith("[customer prompt]") and "Account status: Active (record 003A)" in system
    assert "1984-06-12" not in system and "[withheld: date of birth]" in system  # a cloud model may not see it
    assert call.grounding.status == "found" and call.tools[0].name == "search_customer"
    assert call.tools_optional  # offered, not needed: a fallback without tools answers anyway
    [outcome] = clients.outcomes.posted
    assert (outcome.completion_id, outcome.error, outcome.answer) == ("chatcmpl-1", False, "Edwina is Active.")
    # On record: which customer the turn looked at and the kinds of data, no values.
    [(entities, action, kinds)] = clients.access.records
    assert (entities, action) == (["e-1"], "chat.turn")
    assert {"identity", "status", "date_of_birth"} <= kinds and not any("1984" in k for k in kinds)


async def test_the_models_data_tool_calls_are_run_and_answered():
    lookup = '{"query": "edwina.hawthorne@example.com"}'
    clients = Clients(
        FakeGeneration(
            [ToolCallDelta(0, "call-1", "search_customer", lookup), Finish("tool_calls"), Usage(5, 1)],
            ["Found her.", Finish("stop"), Usage(7, 2)],
        )
    )
    events = await _events(_turn(clients, "cloud", "Who is she?"))
    assert [e for e in events if type(e) is str] == ["Found her."]
    assert events[-1] == Usage(12, 3)  # both rounds
    second = clients.generation.calls[1]
    assert second.messages[-2].tool_calls[0].name == "search_customer"
    result = orjson.loads(second.messages[-1].content)
    assert result["customers"][0]["entity_id"] == "e-1" and second.messages[-1].tool_call_id == "call-1"
    assert clients.access.records == [(["e-1"], "tool.search_customer", {"identity", "contact"})]


async def test_a_customer_beyond_the_lookup_limit_is_refused_before_its_data_is_read():
    clients = Clients(FakeGeneration(["never asked"]))
    clients.access.limit = 0
    read = []
    clients.customers.profile = lambda *args: read.append(args)  # would be called to read the data
    with pytest.raises(LookupLimitReached, match="the limit is 0"):
        await _events(_turn(clients, "offline", "Status of edwina.hawthorne@example.com?"))
    assert read == [] and clients.access.records == [] and clients.generation.calls == []


async def test_a_failure_before_any_word_is_raised_and_after_it_ends_the_stream():
    clients = Clients(FakeGeneration([Unavailable("the model service is away")]))
    with pytest.raises(Unavailable):
        await _events(_turn(clients, "offline", "hello"))
    assert clients.outcomes.posted[-1].error
    clients = Clients(FakeGeneration(["Half an ", Unavailable("the stream broke")]))
    events = await _events(_turn(clients, "offline", "hello"))
    assert events == ["Half an ", StreamError("UNAVAILABLE", "the stream broke")]


async def test_an_unknown_e_mail_is_no_match_and_no_model_sees_a_customer():
    clients = Clients(FakeGeneration(["No customer matches.", Finish("stop"), Usage(1, 1)]))
    await _events(_turn(clients, "offline", "Status of nobody@example.com?"))
    [call] = clients.generation.calls
    assert call.grounding.status == "not_found" and "no customer matches" in call.messages[0].content
    assert not call.tools  # the offline model calls no tools
